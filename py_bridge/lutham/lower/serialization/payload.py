"""Writes and reads LuthamBackend payloads and codebook buffers with the generated code.

The writer takes plain numpy arrays (see LayerData); the reader returns the same, so a
round trip can be compared field by field.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import flatbuffers
import numpy as np

from ...compress.int8 import int8_unsupported
from ...compress.quant import FLOAT_BITS, Quantized, pack_bits, unpack_bits
from ...limits import check_layer
from ...payload import BasisKind, Codebook, ComputeMode, EdgePanels, EdgeValues, Grid, KanLayer, Payload, QuantTensor

SCHEMA_VERSION = 2  # what a float payload is written as (byte for byte what version 2 wrote)
# Version 3 added KanLayer.compute and EdgePanels.group: int8-mode payloads are written as 3, so
# a version 2 reader refuses them instead of misreading their grouped records.
SCHEMA_VERSION_INT8 = 3
KNOWN_SCHEMA_VERSIONS = (SCHEMA_VERSION, SCHEMA_VERSION_INT8)
# Inputs per EdgePanels record in the int8 mode's layout (vpdpbusd's 4 bytes per int32 lane).
INT8_GROUP = 4
PAYLOAD_IDENTIFIER = b"LTHM"
CODEBOOK_IDENTIFIER = b"LTCB"
# Named data alignment of codebook buffers; one value everywhere so identical blobs merge.
CODEBOOK_ALIGNMENT = 16
# Outputs per panel of the edge layout (schema/lutham.fbs EdgePanels): one AVX-512 register,
# two AVX2 registers, four NEON registers of float32.
PANEL_WIDTH = 16
BSPLINE, GAUSSIAN_RBF = BasisKind.BasisKind.BSpline, BasisKind.BasisKind.GaussianRBF
# KanLayer.compute: how LuthamBackend computes the layer (lutham export --compute).
COMPUTE_FLOAT, COMPUTE_INT8 = ComputeMode.ComputeMode.Float, ComputeMode.ComputeMode.Int8
COMPUTE_NAMES = {COMPUTE_FLOAT: "float", COMPUTE_INT8: "int8"}


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
    basis_kind: int = BSPLINE  # or GAUSSIAN_RBF: knots then hold the (in, G) centers
    rbf_denominator: float = 0.0  # h of the RBF exp(-((x - c) / h)^2); unused for B-splines
    compute: int = COMPUTE_FLOAT  # or COMPUTE_INT8: the runtime's integer mode (compress/int8.py)

    @property
    def n_knots(self) -> int:
        """Knots (B-spline) or centers (Gaussian RBF) per input."""
        return self.grid_size if self.basis_kind == GAUSSIAN_RBF else self.grid_size + 2 * self.spline_order + 1


# Named-data keys of LUTHAM codebooks start with this (then sha256-<hex of the codebook bytes>).
CODEBOOK_KEY_PREFIX = "lutham/codebook/"


def codebook_key(codebook_bytes: bytes) -> str:
    """Content-hash key: the same codebook gets the same key wherever it is used."""
    return CODEBOOK_KEY_PREFIX + "sha256-" + hashlib.sha256(codebook_bytes).hexdigest()


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


def _panel_values(values: np.ndarray, out_padded: int) -> np.ndarray:
    """(out, in) -> (panels, in, PANEL_WIDTH): panel-major, input-major, lanes last; padding is 0."""
    out, inn = values.shape
    padded = np.zeros((out_padded, inn), dtype=values.dtype)
    padded[:out] = values
    return padded.reshape(out_padded // PANEL_WIDTH, PANEL_WIDTH, inn).transpose(0, 2, 1)


def _padded_scales(q: Quantized, out_padded: int) -> np.ndarray:
    scales = np.zeros(out_padded, "<f4")
    scales[: len(q.scales)] = q.scales
    return scales


def _edge_fields(layer: LayerData) -> tuple[Quantized, Quantized, Quantized]:
    fields = (layer.gains, layer.biases, layer.base_weight)
    float_fields = [q.bits == FLOAT_BITS for q in fields]
    if any(float_fields) and not all(float_fields):
        raise ValueError("gains, biases and base weights must be all float32 or all integers")
    return fields


def index_dtype(index_bits: int) -> str:
    return "<u1" if index_bits <= 8 else "<u2"


def word_dtype(bits_sum: int) -> str:
    return "<u2" if bits_sum <= 16 else "<u4"


def record_bytes(index_bits: int, field_bits: tuple[int, int, int]) -> int:
    """Bytes of one EdgePanels record (one input of one panel): PANEL_WIDTH lanes of the index and
    of either one word holding gain, bias and base bits, or three float32 (field_bits all 32)."""
    index = np.dtype(index_dtype(index_bits)).itemsize
    fields = 3 * np.dtype("<f4").itemsize if field_bits[0] == FLOAT_BITS else np.dtype(word_dtype(sum(field_bits))).itemsize
    return PANEL_WIDTH * (index + fields)


def _int8_groups(values: np.ndarray, out_padded: int) -> np.ndarray:
    """(out, in) -> (panels, ceil(in/4), PANEL_WIDTH * 4) in [lane][input] order; padding is 0."""
    out, inn = values.shape
    in4 = -(-inn // INT8_GROUP) * INT8_GROUP
    padded = np.zeros((out_padded, in4), dtype=values.dtype)
    padded[:out, :inn] = values
    v = padded.reshape(out_padded // PANEL_WIDTH, PANEL_WIDTH, in4 // INT8_GROUP, INT8_GROUP)
    return v.transpose(0, 2, 1, 3).reshape(out_padded // PANEL_WIDTH, in4 // INT8_GROUP, PANEL_WIDTH * INT8_GROUP)


def _value_words(layer: LayerData) -> tuple[np.ndarray, int]:
    """gain | bias << gain_bits | base << (gain_bits + bias_bits) per edge, and the bits used."""
    word = np.zeros(np.shape(layer.indices), np.uint32)
    shift = 0
    for q in (layer.gains, layer.biases, layer.base_weight):
        word |= (q.values.astype(np.int64) & ((1 << q.bits) - 1)).astype(np.uint32) << shift
        shift += q.bits
    return word, shift


def encode_panels(layer: LayerData) -> tuple[int, np.ndarray]:
    """The edges in EdgePanels layout: (record_bytes, data as uint8); group 4 in the int8 mode."""
    if not 1 <= layer.index_bits <= 16:
        raise ValueError(f"index_bits {layer.index_bits} is outside 1..16 (codebooks hold at most 65536 words)")
    out_padded = -(-layer.out_features // PANEL_WIDTH) * PANEL_WIDTH
    gains, biases, base = _edge_fields(layer)
    if layer.compute == COMPUTE_INT8:
        word, bits = _value_words(layer)
        word_bytes = np.dtype(word_dtype(bits)).itemsize
        planes = [_int8_groups(np.asarray(layer.indices).astype(np.uint8), out_padded)]
        planes += [_int8_groups(((word >> (8 * b)) & 0xFF).astype(np.uint8), out_padded) for b in range(word_bytes)]
        data = np.concatenate(planes, axis=2)
        return data.shape[2], data.reshape(-1)
    parts = [_panel_values(np.asarray(layer.indices), out_padded).astype(index_dtype(layer.index_bits))]
    if gains.bits == FLOAT_BITS:
        parts += [_panel_values(q.values.astype(np.float32), out_padded).astype("<f4") for q in (gains, biases, base)]
    else:
        word, shift = _value_words(layer)
        parts.append(_panel_values(word, out_padded).astype(word_dtype(shift)))
    records = [np.ascontiguousarray(p).view(np.uint8).reshape(*p.shape[:2], -1) for p in parts]
    data = np.concatenate(records, axis=2)
    assert data.shape[2] == record_bytes(layer.index_bits, (gains.bits, biases.bits, base.bits))
    return data.shape[2], data.reshape(-1)


def _split_words(word: np.ndarray, bits: list[int]) -> list[np.ndarray]:
    values, shift = [], 0
    for b in bits:
        v = (word >> shift) & ((1 << b) - 1)
        values.append(np.where(v >= 1 << (b - 1), v - (1 << b), v).astype(np.int8))
        shift += b
    return values


def decode_panels(layer: LayerData, record_bytes: int, data: np.ndarray, group: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    """Inverse of encode_panels: (indices (out, in), [gain, bias, base] values (out, in))."""
    out, inn = layer.out_features, layer.in_features
    panels = -(-out // PANEL_WIDTH)
    bits = [q.bits for q in (layer.gains, layer.biases, layer.base_weight)]
    if group == INT8_GROUP:
        groups = -(-inn // INT8_GROUP)
        plane = PANEL_WIDTH * INT8_GROUP
        records = np.asarray(data, np.uint8).reshape(panels, groups, record_bytes // plane, PANEL_WIDTH, INT8_GROUP)
        # (panels, groups, plane, lane, j) -> (plane, panels * lane, groups * j)
        planes = records.transpose(2, 0, 3, 1, 4).reshape(record_bytes // plane, panels * PANEL_WIDTH, groups * INT8_GROUP)
        planes = planes[:, :out, :inn].astype(np.int64)
        word = np.zeros((out, inn), np.int64)
        for b in range(1, planes.shape[0]):
            word |= planes[b] << (8 * (b - 1))
        return planes[0], _split_words(word, bits)
    records = np.asarray(data, np.uint8).reshape(panels, inn, record_bytes)

    def lanes(offset: int, dtype: str) -> tuple[np.ndarray, int]:
        size = np.dtype(dtype).itemsize * PANEL_WIDTH
        v = np.ascontiguousarray(records[:, :, offset : offset + size]).view(dtype).reshape(panels, inn, PANEL_WIDTH)
        return v.transpose(0, 2, 1).reshape(panels * PANEL_WIDTH, inn)[:out], offset + size

    indices, offset = lanes(0, index_dtype(layer.index_bits))
    if bits[0] == FLOAT_BITS:
        values = []
        for _ in range(3):
            v, offset = lanes(offset, "<f4")
            values.append(v.astype(np.float32))
        return indices.astype(np.int64), values
    word, _ = lanes(offset, word_dtype(sum(bits)))
    return indices.astype(np.int64), _split_words(word.astype(np.int64), bits)


def _write_edge_values(builder: flatbuffers.Builder, q: Quantized, out_padded: int) -> int:
    scales = None if q.bits == FLOAT_BITS else _vector(builder, _padded_scales(q, out_padded))
    EdgeValues.Start(builder)
    EdgeValues.AddBits(builder, q.bits)
    if scales is not None:
        EdgeValues.AddScales(builder, scales)
    return EdgeValues.End(builder)


def payload_checksum(knots: np.ndarray, panels: np.ndarray, scales: list[np.ndarray], compute: int = COMPUTE_FLOAT) -> int:
    """KanLayer.checksum: CRC-32 of knots, panel data and the scales, as stored, then the compute
    byte when it is not float (so float payloads keep the checksum they always had)."""
    crc = zlib.crc32(np.ascontiguousarray(knots, "<f4").tobytes())
    crc = zlib.crc32(np.ascontiguousarray(panels, np.uint8).tobytes(), crc)
    for s in scales:
        crc = zlib.crc32(np.ascontiguousarray(s, "<f4").tobytes(), crc)
    if compute != COMPUTE_FLOAT:
        crc = zlib.crc32(bytes([compute]), crc)
    return crc


def write_payload(layer: LayerData) -> bytes:
    check_layer("a LuthamBackend layer", layer.in_features, layer.out_features, layer.grid_size, layer.spline_order,
                layer.codebook_size)  # the last guard: never write a payload the runtime refuses
    if layer.compute not in COMPUTE_NAMES:
        raise ValueError(f"unknown compute mode {layer.compute}")
    if layer.compute == COMPUTE_INT8:
        reason = int8_unsupported(layer.basis_kind, layer.gains.bits, layer.codebook_size, layer.index_bits, layer.in_features)
        if reason:
            raise ValueError(f"--compute int8: {reason}")
    record_bytes, panels = encode_panels(layer)
    out_padded = -(-layer.out_features // PANEL_WIDTH) * PANEL_WIDTH
    knots_stored = _knots_to_store(layer.knots)
    fields = _edge_fields(layer)
    scales = [] if fields[0].bits == FLOAT_BITS else [_padded_scales(q, out_padded) for q in fields]
    builder = flatbuffers.Builder(1024 + knots_stored.nbytes + panels.nbytes + out_padded * 12)
    key = builder.CreateString(layer.codebook_key)
    knots = _vector(builder, knots_stored)
    data = _vector(builder, panels)
    edge_values = [_write_edge_values(builder, q, out_padded) for q in fields]
    Grid.Start(builder)
    Grid.AddKind(builder, layer.basis_kind)
    Grid.AddGridSize(builder, layer.grid_size)
    Grid.AddSplineOrder(builder, layer.spline_order)
    Grid.AddKnots(builder, knots)
    Grid.AddRbfDenominator(builder, layer.rbf_denominator)
    grid = Grid.End(builder)
    EdgePanels.Start(builder)
    EdgePanels.AddWidth(builder, PANEL_WIDTH)
    EdgePanels.AddRecordBytes(builder, record_bytes)
    EdgePanels.AddData(builder, data)
    if layer.compute == COMPUTE_INT8:
        EdgePanels.AddGroup(builder, INT8_GROUP)
    edge_panels = EdgePanels.End(builder)
    KanLayer.Start(builder)
    KanLayer.AddInFeatures(builder, layer.in_features)
    KanLayer.AddOutFeatures(builder, layer.out_features)
    KanLayer.AddGrid(builder, grid)
    KanLayer.AddCodebookKey(builder, key)
    KanLayer.AddCodebookSize(builder, layer.codebook_size)
    KanLayer.AddCodebookDim(builder, layer.codebook_dim)
    KanLayer.AddIndexBits(builder, layer.index_bits)
    KanLayer.AddGain(builder, edge_values[0])
    KanLayer.AddBias(builder, edge_values[1])
    KanLayer.AddBase(builder, edge_values[2])
    KanLayer.AddPanels(builder, edge_panels)
    KanLayer.AddR2(builder, layer.r2)
    KanLayer.AddChecksum(builder, payload_checksum(knots_stored, panels, scales, layer.compute))
    KanLayer.AddCompute(builder, layer.compute)  # the default (float) is not written: float files stay as they were
    kan = KanLayer.End(builder)
    Payload.Start(builder)
    Payload.AddSchemaVersion(builder, SCHEMA_VERSION_INT8 if layer.compute == COMPUTE_INT8 else SCHEMA_VERSION)
    Payload.AddLayer(builder, kan)
    builder.Finish(Payload.End(builder), file_identifier=PAYLOAD_IDENTIFIER)
    return bytes(builder.Output())


def read_payload(data: bytes) -> tuple[int, LayerData]:
    """(schema_version, layer) from payload bytes; raises ValueError on a foreign buffer."""
    if len(data) < 8 or data[4:8] != PAYLOAD_IDENTIFIER:
        raise ValueError("not a LUTHAM payload (identifier LTHM missing)")
    p = Payload.Payload.GetRootAs(data, 0)
    if p.SchemaVersion() not in KNOWN_SCHEMA_VERSIONS:
        raise ValueError(f"payload schema version {p.SchemaVersion()}, this reader knows {', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}")
    k = p.Layer()
    grid = k.Grid()
    out = k.OutFeatures()

    def values_of(v) -> Quantized:
        bits = v.Bits()
        scales = v.ScalesAsNumpy()[:out].astype(np.float32) if bits != FLOAT_BITS else np.ones(out, np.float32)
        return Quantized(np.zeros((out, k.InFeatures()), np.int8), scales, bits)

    layer = LayerData(
        in_features=k.InFeatures(),
        out_features=out,
        grid_size=grid.GridSize(),
        spline_order=grid.SplineOrder(),
        knots=np.zeros((0, 0), np.float32),
        codebook_key=k.CodebookKey().decode(),
        codebook_size=k.CodebookSize(),
        codebook_dim=k.CodebookDim(),
        index_bits=k.IndexBits(),
        indices=np.zeros((out, k.InFeatures()), np.int64),
        gains=values_of(k.Gain()),
        biases=values_of(k.Bias()),
        base_weight=values_of(k.Base()),
        r2=k.R2(),
        basis_kind=grid.Kind(),
        rbf_denominator=grid.RbfDenominator(),
        compute=k.Compute(),
    )
    n_knots = layer.n_knots
    layer.knots = np.broadcast_to(grid.KnotsAsNumpy().astype(np.float32).reshape(-1, n_knots), (layer.in_features, n_knots)).copy()
    panels = k.Panels()
    layer.indices, values = decode_panels(layer, panels.RecordBytes(), panels.DataAsNumpy(), panels.Group())
    for q, v in zip((layer.gains, layer.biases, layer.base_weight), values):
        q.values = v
    return p.SchemaVersion(), layer
