"""Kernel test cases for delegate/test/kernel_test.cpp, written by the project's Python writer.

Each case is a synthetic layer (seeded) covering one kernel path: lane and sample batches,
table and direct coefficient terms, u8/u16 indices, 16- and 32-bit value words and float32
values, B-spline and RBF bases, shared and per-input knots, input blocks and panel chunks,
and scales whose 2^-pos pre-division underflows. Per case NAME the directory gets

  NAME.payload   write_payload(layer): the bytes LuthamBackend receives
  NAME.codebook  write_codebook(words)
  NAME.x         float32 inputs, kMaxBatch rows of in_features
  NAME.edges     the oracle: read_payload's decoding of NAME.payload, as float32 arrays
                 (index, gain, bias, base; each out x in, dequantized as q * scale in float32)
                 followed by the codebook read back by read_codebook (K x dim, q * scale)
  NAME.ref       float64 forward of the decoded layer (kan.basis in float64), kMaxBatch x out,
                 for a tolerance check of the semantics (the bit checks use NAME.edges)

Int8-mode cases (INT8_CASES: payloads with compute int8, grouped records) instead of .edges
and .ref have

  NAME.int8ref   the numpy reference of the int8 mode (lutham.compress.int8.int8_forward) on the
                 layer as read back by read_payload / read_codebook, kMaxBatch x out float32:
                 the kernel must match it bit for bit
  NAME.floatref  the float mode's float64 forward of the same layer (NAME.ref's), for the size
                 of the int8 mode's error

and cases.txt lists the names. The C++ test parses NAME.payload with the runtime's own
validation (parse_payload, parse_codebook), so a writer/reader mismatch fails there.

    PYTHONPATH=py_bridge python delegate/test/make_kernel_cases.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

# Today's module paths (the restructuring moves them: keep every project import here).
from lutham.compress.quant import FLOAT_BITS, Quantized
from lutham.model.kan import BSPLINE, RBF, basis, uniform_knots
from lutham.compress.int8 import int8_forward
from lutham.lower.serialization.payload import (COMPUTE_INT8, LayerData, codebook_key, read_codebook, read_payload,
                                                write_codebook, write_payload)

MAX_BATCH = 20  # kernel_test.cpp runs batches 1, 3, 8, 13 and 20 (lane and sample paths)

# name, in, out, K, (gain, bias, base) bits, rbf, per-input knots, tiny scale[, grid (default 5)[, order (3)]]
CASES = [
    ("int-table", 37, 40, 32, (6, 4, 5), False, False, False),
    ("int-direct", 37, 17, 250, (6, 4, 5), False, False, False),
    ("int-table-input-blocks", 1100, 20, 32, (6, 4, 5), False, False, False),
    ("int-table-panel-chunks", 40, 1100, 64, (6, 4, 5), False, False, False),
    ("int-table-tiny-scale", 37, 40, 32, (6, 4, 5), False, False, True),
    ("int8-u16-index", 23, 17, 300, (8, 8, 8), False, False, False),
    ("float-table", 29, 64, 48, (32, 32, 32), False, False, False),
    ("rbf-int", 19, 33, 16, (6, 4, 5), True, False, False),
    ("per-input-knots", 21, 18, 16, (5, 5, 5), False, True, False),
    ("default-head", 160, 48, 128, (6, 4, 5), False, False, False),
    # tabulated with K > 128: the AVX-512 lane path gathers instead of using register tables
    ("int-table-gather", 37, 48, 192, (6, 4, 5), False, False, False),
    ("int8-u16-index-table", 23, 80, 300, (8, 8, 8), False, False, False),
    # shared knots read from registers by the vectorized windows up to 16 knots (grid 9, the
    # bench's), gathered above (grid 12: 19 knots)
    ("grid-9", 45, 20, 32, (6, 4, 5), False, False, False, 9),
    ("grid-12", 45, 20, 32, (6, 4, 5), False, False, False, 12),
    # the vectorized windows' general store (the cubic one is a register transpose)
    ("order-2", 45, 20, 32, (6, 4, 5), False, False, False, 5, 2),
]


# Int8 mode: name, in, out, K, (gain, bias, base) bits, per-input knots[, grid (5)[, order (3)]]. Inputs
# not a multiple of 4 (padded groups), table strides 32/64/128/256, base weights reaching into
# the low byte (2/3/4), a bias all in the high byte (8/4/4), 32-bit words (8/8/8: the portable
# loops in every variant), per-input knots and more than 32 knots (the scalar windows), orders
# 1, 2 and 4 (B8 rows of 2, 4 and 6 bytes), inputs over the lane and batch blocks, outputs over
# one lane chunk (32 panels).
INT8_CASES = [
    ("int8-default", 37, 40, 32, (6, 4, 5), False),
    ("int8-k64", 41, 17, 64, (6, 4, 5), False),
    ("int8-k100", 300, 33, 100, (6, 4, 5), False, 9),
    ("int8-k200", 23, 20, 200, (6, 4, 5), False),
    ("int8-base-low", 29, 24, 48, (2, 3, 4), False),
    ("int8-bias-high", 29, 24, 48, (8, 4, 4), False),
    ("int8-words32", 22, 18, 32, (8, 8, 8), False),
    ("int8-per-input-knots", 21, 18, 16, (5, 5, 5), True),
    ("int8-grid30", 19, 20, 32, (6, 4, 5), False, 30),
    ("int8-order1", 26, 20, 32, (6, 4, 5), False, 5, 1),
    ("int8-order2", 26, 20, 32, (6, 4, 5), False, 5, 2),
    ("int8-order4", 26, 20, 32, (6, 4, 5), False, 6, 4),
    ("int8-wide", 70, 530, 128, (6, 4, 5), False, 9),
    # The AVX2 loops' limits: 7-bit gains and 6-bit biases at the edge of vpmaddubsw's exact
    # range; 27 knots (the four-register knot table of the vector B-spline windows).
    ("int8-gain7-bias6", 45, 33, 128, (7, 6, 3), False),
    ("int8-knots27", 33, 20, 64, (6, 4, 5), False, 20),
]


def make_layer(rng: np.random.Generator, name, inn, out, K, bits, rbf, per_input, tiny, grid=5, order=3) -> tuple[LayerData, Quantized]:
    G, k = (7, 0) if rbf else (grid, order)
    dim = G if rbf else G + k
    if rbf:
        knots = np.broadcast_to(np.linspace(-1, 1, G, dtype=np.float32), (inn, G)).copy()
    else:
        knots = uniform_knots(inn, G, k).numpy().astype(np.float32)
    if per_input:
        knots = (knots + 0.01 * np.arange(inn, dtype=np.float32)[:, None]).astype(np.float32)
    words = Quantized(rng.integers(-127, 128, size=(K, dim)).astype(np.int8),
                      rng.uniform(0.001, 0.02, size=K).astype(np.float32), 8)

    def field(b: int) -> Quantized:
        if b == FLOAT_BITS:
            return Quantized(rng.uniform(-0.5, 0.5, size=(out, inn)).astype(np.float32), np.ones(out, np.float32), b)
        qmax = (1 << (b - 1)) - 1
        scales = rng.uniform(0.01, 0.1, size=out).astype(np.float32)
        if tiny:
            scales[1] = np.float32(1.5e-38)  # scale * 2^-pos underflows: the AVX2 16-bit decoder must fall back
        return Quantized(rng.integers(-qmax, qmax + 1, size=(out, inn)).astype(np.int8), scales, b)

    gains, biases, base = (field(b) for b in bits)
    index_bits = max(1, int(np.ceil(np.log2(K))))
    layer = LayerData(in_features=inn, out_features=out, grid_size=G, spline_order=k, knots=knots,
                      codebook_key=codebook_key(write_codebook(words)), codebook_size=K, codebook_dim=dim,
                      index_bits=index_bits, indices=rng.integers(0, K, size=(out, inn)), gains=gains, biases=biases,
                      base_weight=base, basis_kind=RBF if rbf else BSPLINE, rbf_denominator=0.4 if rbf else 0.0)
    return layer, words


def dequantized(q: Quantized) -> np.ndarray:
    """float32(q) * scale in float32, one rounding, as the kernel does; float fields as stored."""
    if q.bits == FLOAT_BITS:
        return q.values.astype(np.float32)
    return q.values.astype(np.float32) * q.scales.astype(np.float32)[:, None]


def reference(layer: LayerData, columns: np.ndarray, fields: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """y = sum_i base*silu(x) + gain*(B(x) . codeword) + bias*sum B(x), in float64."""
    xt = torch.from_numpy(x.astype(np.float64))
    b = basis(xt, torch.from_numpy(layer.knots.astype(np.float64)), layer.spline_order, layer.basis_kind,
              layer.rbf_denominator).numpy()  # (N, in, dim)
    words = columns.astype(np.float64)  # (K, dim)
    coef = np.einsum("nid,oid->noi", b, words[layer.indices])  # (N, out, in)
    silu = (xt * torch.sigmoid(xt)).numpy()
    gain, bias, base = (f.astype(np.float64) for f in fields)
    return (np.einsum("oi,ni->no", base, silu) + np.einsum("oi,noi->no", gain, coef)
            + np.einsum("oi,ni->no", bias, b.sum(-1)))


def inputs(rng: np.random.Generator, layer: LayerData) -> np.ndarray:
    x = rng.uniform(-1.3, 1.3, size=(MAX_BATCH, layer.in_features)).astype(np.float32)
    # Inputs outside the extended grid (every basis 0) and exactly on knots (interval edges).
    x[:, 5::7] = np.float32(5.0)
    x[1::2, 6::13] = np.float32(-7.5)
    row = layer.knots[0]
    x[:, 2::11] = row[np.arange(x[:, 2::11].shape[1]) % len(row)]
    return x


def main(out_dir: str) -> int:
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    names = []
    for i, case in enumerate(CASES):
        rng = np.random.default_rng(1000 + i)
        layer, words = make_layer(rng, *case)
        payload, codebook = write_payload(layer), write_codebook(words)
        # The oracle: what Python's reader makes of the bytes (not of `layer`).
        _, read = read_payload(payload)
        cb = read_codebook(codebook)
        columns = dequantized(cb)
        fields = [dequantized(q) for q in (read.gains, read.biases, read.base_weight)]
        x = inputs(rng, layer)
        name = case[0]
        (tmp / f"{name}.payload").write_bytes(payload)
        (tmp / f"{name}.codebook").write_bytes(codebook)
        (tmp / f"{name}.x").write_bytes(x.astype("<f4").tobytes())
        edges = [read.indices.astype("<f4")] + [f.astype("<f4") for f in fields] + [columns.astype("<f4")]
        (tmp / f"{name}.edges").write_bytes(b"".join(e.tobytes() for e in edges))
        (tmp / f"{name}.ref").write_bytes(reference(read, columns, fields, x).astype("<f8").tobytes())
        names.append(name)
    for i, (name, inn, n_out, K, bits, per_input, *shape) in enumerate(INT8_CASES):
        rng = np.random.default_rng(2000 + i)
        layer, words = make_layer(rng, name, inn, n_out, K, bits, False, per_input, False, *shape)
        layer.compute = COMPUTE_INT8
        payload, codebook = write_payload(layer), write_codebook(words)
        _, read = read_payload(payload)
        columns = dequantized(read_codebook(codebook))
        x = inputs(rng, read)
        x[7, 3] = np.float32(np.nan)  # sample 7: a NaN input gives NaN outputs
        y = int8_forward(x, read.knots, read.spline_order, columns, read.indices, read.gains, read.biases, read.base_weight)
        fields = [dequantized(q) for q in (read.gains, read.biases, read.base_weight)]
        (tmp / f"{name}.payload").write_bytes(payload)
        (tmp / f"{name}.codebook").write_bytes(codebook)
        (tmp / f"{name}.x").write_bytes(x.astype("<f4").tobytes())
        (tmp / f"{name}.int8ref").write_bytes(y.astype("<f4").tobytes())
        (tmp / f"{name}.floatref").write_bytes(reference(read, columns, fields, x).astype("<f8").tobytes())
        names.append(name)
    (tmp / "cases.txt").write_text("\n".join(names) + "\n")
    if out.exists():
        for f in out.iterdir():
            f.unlink()
        out.rmdir()
    os.replace(tmp, out)
    print(f"make_kernel_cases: {len(names)} cases in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: make_kernel_cases.py OUT_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
