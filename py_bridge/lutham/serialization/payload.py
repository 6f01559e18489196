"""Writes and reads LuthamBackend payloads and codebook buffers with the generated code.

The writer takes plain numpy arrays (see LayerData); the reader returns the same, so a
round trip can be compared field by field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import flatbuffers
import numpy as np

from ..compress.quant import FLOAT_BITS, Quantized, pack_bits, unpack_bits
from ..payload import BasisKind, Codebook, Grid, KanLayer, Payload, QuantTensor

SCHEMA_VERSION = 1
PAYLOAD_IDENTIFIER = b"LTHM"
CODEBOOK_IDENTIFIER = b"LTCB"
# Named data alignment of codebook buffers; one value everywhere so identical blobs merge.
CODEBOOK_ALIGNMENT = 16


@dataclass
class LayerData:
    in_features: int
    out_features: int
    grid_size: int
    spline_order: int
    knots: np.ndarray  # (in, G+2k+1) float32
    codebook_key: str
    codebook_size: int
    codebook_dim: int
    index_bits: int
    indices: np.ndarray  # (out, in) ints
    gains: Quantized
    biases: Quantized
    base_weight: Quantized
    r2: float = float("nan")
    basis_kind: int = 0  # 0 B-spline, 1 Gaussian RBF (knots then hold the (in, G) centers)
    rbf_denominator: float = 0.0  # h of the RBF exp(-((x - c) / h)^2); unused for B-splines


def codebook_key(codebook_bytes: bytes) -> str:
    """Content-hash key: the same codebook gets the same key wherever it is used."""
    return "lutham/codebook/sha256-" + hashlib.sha256(codebook_bytes).hexdigest()


def _vector(builder: flatbuffers.Builder, array: np.ndarray) -> int:
    return builder.CreateNumpyVector(np.ascontiguousarray(array))


def _write_quant(builder: flatbuffers.Builder, q: Quantized) -> int:
    rows, cols = q.values.shape
    if q.bits == FLOAT_BITS:
        f32 = _vector(builder, q.values.astype("<f4").reshape(-1))
        packed = scales = None
    else:
        f32 = None
        packed = _vector(builder, np.frombuffer(pack_bits(q.values, q.bits), dtype=np.uint8))
        scales = _vector(builder, q.scales.astype("<f4"))
    QuantTensor.Start(builder)
    QuantTensor.AddRows(builder, rows)
    QuantTensor.AddCols(builder, cols)
    QuantTensor.AddBits(builder, q.bits)
    if f32 is not None:
        QuantTensor.AddF32(builder, f32)
    if packed is not None:
        QuantTensor.AddPacked(builder, packed)
        QuantTensor.AddScales(builder, scales)
    return QuantTensor.End(builder)


def _read_quant(t) -> Quantized:
    rows, cols, bits = t.Rows(), t.Cols(), t.Bits()
    if bits == FLOAT_BITS:
        values = t.F32AsNumpy().astype(np.float32).reshape(rows, cols) if rows * cols else np.zeros((rows, cols), np.float32)
        return Quantized(values, np.ones(rows, np.float32), bits)
    packed = t.PackedAsNumpy().tobytes() if t.PackedLength() else b""
    values = unpack_bits(packed, bits, rows * cols, signed=True).astype(np.int8).reshape(rows, cols)
    return Quantized(values, t.ScalesAsNumpy().astype(np.float32), bits)


def write_codebook(words: Quantized) -> bytes:
    builder = flatbuffers.Builder(words.values.nbytes + 1024)
    values = _write_quant(builder, words)
    Codebook.Start(builder)
    Codebook.AddSize(builder, words.values.shape[0])
    Codebook.AddDim(builder, words.values.shape[1])
    Codebook.AddValues(builder, values)
    builder.Finish(Codebook.End(builder), file_identifier=CODEBOOK_IDENTIFIER)
    return bytes(builder.Output())


def read_codebook(data: bytes) -> Quantized:
    if len(data) < 8 or data[4:8] != CODEBOOK_IDENTIFIER:
        raise ValueError("not a LUTHAM codebook buffer (identifier LTCB missing)")
    cb = Codebook.Codebook.GetRootAs(data, 0)
    return _read_quant(cb.Values())


def _knots_to_store(knots: np.ndarray) -> np.ndarray:
    """One shared row when every input has the same knots (the uniform grid), else all rows."""
    knots = knots.astype("<f4")
    if len(knots) > 1 and (knots == knots[:1]).all():
        return knots[0].copy()
    return knots.reshape(-1)


def write_payload(layer: LayerData) -> bytes:
    builder = flatbuffers.Builder(1024 + layer.knots.nbytes + layer.indices.size * 4)
    key = builder.CreateString(layer.codebook_key)
    knots = _vector(builder, _knots_to_store(layer.knots))
    indices = _vector(builder, np.frombuffer(pack_bits(layer.indices, layer.index_bits), dtype=np.uint8))
    gains = _write_quant(builder, layer.gains)
    biases = _write_quant(builder, layer.biases)
    base = _write_quant(builder, layer.base_weight)
    Grid.Start(builder)
    Grid.AddKind(builder, BasisKind.BasisKind.BSpline)
    Grid.AddGridSize(builder, layer.grid_size)
    Grid.AddSplineOrder(builder, layer.spline_order)
    Grid.AddKnots(builder, knots)
    grid = Grid.End(builder)
    KanLayer.Start(builder)
    KanLayer.AddInFeatures(builder, layer.in_features)
    KanLayer.AddOutFeatures(builder, layer.out_features)
    KanLayer.AddGrid(builder, grid)
    KanLayer.AddCodebookKey(builder, key)
    KanLayer.AddCodebookSize(builder, layer.codebook_size)
    KanLayer.AddCodebookDim(builder, layer.codebook_dim)
    KanLayer.AddIndexBits(builder, layer.index_bits)
    KanLayer.AddIndices(builder, indices)
    KanLayer.AddGains(builder, gains)
    KanLayer.AddBiases(builder, biases)
    KanLayer.AddBaseWeight(builder, base)
    KanLayer.AddR2(builder, layer.r2)
    kan = KanLayer.End(builder)
    Payload.Start(builder)
    Payload.AddSchemaVersion(builder, SCHEMA_VERSION)
    Payload.AddLayer(builder, kan)
    builder.Finish(Payload.End(builder), file_identifier=PAYLOAD_IDENTIFIER)
    return bytes(builder.Output())


def read_payload(data: bytes) -> tuple[int, LayerData]:
    """(schema_version, layer) from payload bytes; raises ValueError on a foreign buffer."""
    if len(data) < 8 or data[4:8] != PAYLOAD_IDENTIFIER:
        raise ValueError("not a LUTHAM payload (identifier LTHM missing)")
    p = Payload.Payload.GetRootAs(data, 0)
    k = p.Layer()
    grid = k.Grid()
    n_edges = k.OutFeatures() * k.InFeatures()
    indices = unpack_bits(k.IndicesAsNumpy().tobytes(), k.IndexBits(), n_edges, signed=False)
    layer = LayerData(
        in_features=k.InFeatures(),
        out_features=k.OutFeatures(),
        grid_size=grid.GridSize(),
        spline_order=grid.SplineOrder(),
        knots=np.broadcast_to(
            grid.KnotsAsNumpy().astype(np.float32).reshape(-1, grid.GridSize() + 2 * grid.SplineOrder() + 1),
            (k.InFeatures(), grid.GridSize() + 2 * grid.SplineOrder() + 1),
        ).copy(),
        codebook_key=k.CodebookKey().decode(),
        codebook_size=k.CodebookSize(),
        codebook_dim=k.CodebookDim(),
        index_bits=k.IndexBits(),
        indices=indices.reshape(k.OutFeatures(), k.InFeatures()),
        gains=_read_quant(k.Gains()),
        biases=_read_quant(k.Biases()),
        base_weight=_read_quant(k.BaseWeight()),
        r2=k.R2(),
    )
    return p.SchemaVersion(), layer
