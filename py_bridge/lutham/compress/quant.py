"""Symmetric per-row integer quantization and LSB-first bit packing.

The packing is the payload's (schema/lutham.fbs, QuantTensor and KanLayer.indices):
values are written one after another, `bits` bits each, least significant bit first,
into a little-endian bit stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOAT_BITS = 32


@dataclass
class Quantized:
    """A (rows, cols) matrix: float32 values (bits == 32) or ints q with value = q * scale[row]."""

    values: np.ndarray  # float32 when bits == 32, else int8 holding `bits`-bit signed ints
    scales: np.ndarray  # float32 (rows,), ones when bits == 32
    bits: int

    def dequantize(self) -> np.ndarray:
        if self.bits == FLOAT_BITS:
            return self.values.astype(np.float32)
        return self.values.astype(np.float32) * self.scales[:, None]


def quantize_rows(x: np.ndarray, bits: int) -> Quantized:
    """Symmetric quantization with one scale per row: q in [-(2^(b-1)-1), 2^(b-1)-1]."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"quantize_rows takes a matrix, got shape {x.shape}")
    if bits == FLOAT_BITS:
        return Quantized(x.copy(), np.ones(x.shape[0], np.float32), FLOAT_BITS)
    if not 2 <= bits <= 8:
        raise ValueError(f"bit width must be 2..8 or 32, got {bits}")
    qmax = (1 << (bits - 1)) - 1
    peak = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    scales = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scales[:, None]), -qmax, qmax).astype(np.int8)
    return Quantized(q, scales, bits)


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack integers (signed or unsigned) into `bits`-bit fields, LSB first."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bit width must be 1..32, got {bits}")
    v = np.ascontiguousarray(values).reshape(-1).astype(np.int64) & ((1 << bits) - 1)
    if bits == 8:
        return v.astype(np.uint8).tobytes()
    if bits == 16:
        return v.astype("<u2").tobytes()
    if bits == 32:
        return v.astype("<u4").tobytes()
    out = bytearray()
    chunk = 1 << 20  # chunks of a multiple of 8 values keep every chunk byte-aligned
    for start in range(0, v.size, chunk):
        part = v[start : start + chunk].astype(np.uint32)
        bit_matrix = ((part[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
        out += np.packbits(bit_matrix.reshape(-1), bitorder="little").tobytes()
    return bytes(out)


def unpack_bits(data: bytes, bits: int, count: int, signed: bool) -> np.ndarray:
    """Inverse of pack_bits: `count` values of `bits` bits, sign-extended if `signed`."""
    needed = (count * bits + 7) // 8
    if len(data) < needed:
        raise ValueError(f"packed data has {len(data)} bytes, {count} values of {bits} bits need {needed}")
    raw = np.frombuffer(data, dtype=np.uint8, count=needed)
    stream = np.unpackbits(raw, bitorder="little")[: count * bits].reshape(count, bits).astype(np.int64)
    v = (stream << np.arange(bits, dtype=np.int64)).sum(axis=1)
    if signed:
        v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v
