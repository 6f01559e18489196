"""The int8 compute mode (`lutham export --compute int8`): what it takes, and its numpy reference.

The float mode computes every edge in float32. The int8 mode quantizes what each edge multiplies
(delegate/runtime/kan_kernel.h has the same description, the C++ is bit-identical to this):

- the coefficient table T[i][c] = basis(x_i) . codeword_c: because B-spline bases are >= 0 and
  sum to at most 1, |T| <= max |codebook|, so one static scale serves the whole table. The
  codebook is requantized once to that scale (cq, |cq| <= qmax(k)), the k+1 window bases to
  B8 = min(255, rne(256 B)), and T8 = clamp((P16 + 128) >> 8, -128, 127) with P16 the
  int16 dot product of B8 and cq (pair sums saturating, as vpmaddubsw);
- the basis sum of each input to bsum8 = min(255, rne(255 bsum));
- silu(x_i) to silu8 = rne((silu - lo) * 255 / (hi - lo)) with lo/hi the sample's min/max
  (a dynamic per-sample scale, as XNNPACK's dynamic int8); silu itself from a float-only
  exp polynomial (mul and add: the same bits here and in C++ on every ISA), and the B-spline
  bases by efficient-kan's Cox-de Boor with the knot differences' reciprocals (multiplications
  instead of divisions: three times faster in the kernel, and rounded to 8 bits anyway).

Each output is then three exact int32 dot products over its inputs (gain x T8, bias x bsum8,
base x silu8) and one float32 expression, each product and sum rounded once (no fma):
    y = (gain_scale * Ag + bias_scale * Ab) + base_scale * (sx * Aw + lo * base_sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..model.kan import BSPLINE
from .quant import FLOAT_BITS, Quantized

# KanLayer.compute (schema/lutham.fbs ComputeMode) and the names `lutham export --compute` takes.
COMPUTE_FLOAT, COMPUTE_INT8 = 0, 1
COMPUTE_MODES = {"float": COMPUTE_FLOAT, "int8": COMPUTE_INT8}
INT8_MAX_CODEBOOK = 256
INT8_MAX_INPUTS = 65536
F32 = np.float32


def int8_unsupported(basis_kind: int, value_bits: int, codebook_size: int, index_bits: int, in_features: int) -> str | None:
    """Why a layer cannot use the int8 mode (None: it can); the runtime refuses the same."""
    if basis_kind != BSPLINE:
        return "an RBF layer's basis values are not bounded by 1 (the int8 mode needs B-splines)"
    if value_bits == FLOAT_BITS:
        return "the int8 mode needs integer gains, biases and base weights (not --fp32)"
    if codebook_size > INT8_MAX_CODEBOOK or index_bits > 8:
        return f"the int8 mode needs a codebook of at most {INT8_MAX_CODEBOOK} words (one-byte indices), got K = {codebook_size}"
    if in_features > INT8_MAX_INPUTS:
        return f"the int8 mode takes at most {INT8_MAX_INPUTS} inputs per layer, got {in_features}"
    return None


def set_compute(model, compute: str) -> None:
    """Sets every SharedKANLinear of the model to `compute` ("float" or "int8"); for int8 first
    checks that each layer can use it (ValueError naming the layer otherwise)."""
    from .layer import SharedKANLinear  # layer.py imports this module

    if compute not in COMPUTE_MODES:
        raise ValueError(f"--compute must be float or int8, got '{compute}'")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, SharedKANLinear)]
    if compute == "int8":
        for name, m in layers:
            reason = int8_unsupported(m.basis_kind, m.gain_bits, m.codebook.shape[0], m.index_bits, m.in_features)
            if reason:
                raise ValueError(f"--compute int8: layer {name}: {reason}")
    for _, m in layers:
        m.compute = COMPUTE_MODES[compute]


def codebook_qmax(order: int) -> int:
    """Largest |requantized codeword value|: the table's pair sums then never leave int16."""
    return min(127, 32767 // (256 + (order + 1) // 2))


def _rne_u8(t: np.ndarray) -> np.ndarray:
    """rne(clamp(t, 0, 255)) as the kernel's vmaxps/vminps/cvtps2dq (a NaN t gives 0)."""
    t = np.where(t > F32(0), t, F32(0))
    t = np.where(t < F32(255), t, F32(255))
    return np.rint(t).astype(np.uint8)


@dataclass
class Int8Constants:
    """What the runtime derives from a layer once at init (kan_int8_prepare)."""

    codebook: np.ndarray  # (K, dim) int8, |v| <= qmax
    codebook_scale: np.float32
    gain_sum: np.ndarray  # (out,) int64: sum over inputs of the gain ints
    base_sum: np.ndarray
    gain_scale: np.ndarray  # (out,) float32: gain scale * codebook_scale
    bias_scale: np.ndarray  # (out,) float32: bias scale / 255
    base_scale: np.ndarray


def int8_constants(codebook: np.ndarray, order: int, gains: Quantized, biases: Quantized, base: Quantized) -> Int8Constants:
    """codebook: (K, dim) float32 as the layer dequantizes it (q * scale, one rounding)."""
    cb = np.ascontiguousarray(codebook, F32)
    qmax = codebook_qmax(order)
    amax = F32(np.abs(cb).max()) if cb.size else F32(0)
    scale = F32(amax / F32(qmax))
    if amax > 0:
        t = cb / scale
        t = np.where(t > F32(-qmax), t, F32(-qmax))
        t = np.where(t < F32(qmax), t, F32(qmax))
        cq = np.rint(t).astype(np.int8)
    else:
        cq = np.zeros(cb.shape, np.int8)
    return Int8Constants(
        codebook=cq, codebook_scale=scale,
        gain_sum=gains.values.astype(np.int64).sum(axis=1), base_sum=base.values.astype(np.int64).sum(axis=1),
        gain_scale=(gains.scales.astype(F32) * scale).astype(F32), bias_scale=(biases.scales.astype(F32) / F32(255)).astype(F32),
        base_scale=base.scales.astype(F32))


def silu_q8(x: np.ndarray) -> np.ndarray:
    """x / (1 + e^-x) with Cephes' expf polynomial in float32 mul/add (kan_kernel_plan.h)."""
    x = np.asarray(x, F32)
    with np.errstate(invalid="ignore", over="ignore"):
        v = -x
        v = np.where(v > F32(-87), v, F32(-87))
        v = np.where(v < F32(88), v, F32(88)).astype(F32)
        fx = v * F32(1.44269504088896341)
        fx = (fx + F32(12582912.0)) - F32(12582912.0)
        r = v - fx * F32(0.693359375)
        r = r - fx * F32(-2.12194440e-4)
        z = r * r
        y = np.full_like(r, F32(1.9875691500e-4))
        for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
            y = y * r + F32(c)
        y = y * z + r
        y = y + F32(1.0)
        pow2n = ((fx.astype(np.int32) + 127).astype(np.uint32) << np.uint32(23)).view(F32)
        return (x / (F32(1.0) + y * pow2n)).astype(F32)


def knot_reciprocals(knots: np.ndarray, order: int) -> np.ndarray:
    """(rows, order, n_knots) float32: 1 / (t[m + p] - t[m]) at [:, p - 1, m], 0 past the row."""
    t = np.asarray(knots, F32)
    inv = np.zeros((t.shape[0], order, t.shape[1]), F32)
    for p in range(1, order + 1):
        inv[:, p - 1, : t.shape[1] - p] = F32(1) / (t[:, p:] - t[:, :-p])
    return inv


def bspline_windows(x: np.ndarray, knots: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bspline_window_q8 (kan_kernel_plan.h) for every (sample, input): values (N, in, k+1),
    start (N, in), sum (N, in). Cox-de Boor as efficient-kan's, each division by a knot
    difference a multiplication by its reciprocal; zero outside the extended grid."""
    x = np.asarray(x, F32)
    t = np.asarray(knots, F32)
    N, inn = x.shape
    n, k = t.shape[1], order
    inv = knot_reciprocals(t, k)  # (in, k, n)
    inside = (x >= t[None, :, 0]) & (x < t[None, :, -1])
    j = np.stack([np.searchsorted(t[i], x[:, i], side="right") - 1 for i in range(inn)], axis=1)
    j = np.where(inside, j, 0)
    rows = np.broadcast_to(np.arange(inn)[None, :], (N, inn))

    def at(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return table[rows, np.clip(idx, 0, n - 1)]

    local = np.zeros((N, inn, k + 2), F32)
    local[..., k] = F32(1)
    with np.errstate(invalid="ignore", over="ignore"):
        for p in range(1, k + 1):
            ip = inv[:, p - 1, :]
            for r in range(k + 1):
                m = j - k + r
                valid = (m >= 0) & (m <= n - 2 - p)
                left = (x - at(t, m)) * at(ip, m)
                right = (at(t, m + p + 1) - x) * at(ip, m + 1)
                v = left * local[..., r] + right * local[..., r + 1]
                local[..., r] = np.where(valid, v, F32(0))
    st = np.where(inside, np.clip(j - k, 0, n - 1 - k - (k + 1)), 0)
    shift = st - (j - k)
    values = np.zeros((N, inn, k + 1), F32)
    for q in range(k + 1):
        src = q + shift
        ok = inside & (src >= 0) & (src <= k)
        values[..., q] = np.where(ok, np.take_along_axis(local, np.clip(src, 0, k + 1)[..., None], axis=2)[..., 0], F32(0))
    total = np.zeros((N, inn), F32)
    for q in range(k + 1):
        total = (total + values[..., q]).astype(F32)
    return values, st.astype(np.int64), total


def int8_tables(values: np.ndarray, start: np.ndarray, cq: np.ndarray, order: int) -> np.ndarray:
    """T8 + 128 (u8) for every (sample, input, codeword): (N, in, K)."""
    K, dim = cq.shape
    width = order + 1
    pairs = (order + 2) // 2
    b8 = np.zeros((*values.shape[:2], 2 * pairs), np.int32)
    b8[..., :width] = _rne_u8((values * F32(256)).astype(F32))
    padded = np.zeros((K, dim + 2), np.int32)
    padded[:, :dim] = cq
    cols = padded.T  # (dim + 2, K)
    acc = None
    for p in range(pairs):
        a = cols[start + 2 * p] * b8[..., 2 * p, None]  # (N, in, K)
        b = cols[start + 2 * p + 1] * b8[..., 2 * p + 1, None]
        v = np.clip(a + b, -32768, 32767)
        acc = v if acc is None else ((acc + v + 32768) % 65536) - 32768
    q = np.clip((acc + 128) >> 8, -128, 127)
    return (q + 128).astype(np.uint8)


def quantize_silu(silu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: silu8 (N, in) u8, lo (N,), sx (N,); NaN lo/sx where a value is not finite."""
    silu = np.asarray(silu, F32)
    finite = np.isfinite(silu).all(axis=1)
    safe = np.where(finite[:, None], silu, F32(0))
    lo = (safe.min(axis=1) + F32(0)).astype(F32)  # +0: -0 and +0 give the same bits
    hi = (safe.max(axis=1) + F32(0)).astype(F32)
    rng = (hi - lo).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(rng > F32(0), F32(255) / rng, F32(0)).astype(F32)
        silu8 = _rne_u8(((safe - lo[:, None]) * inv[:, None]).astype(F32))
    sx = (rng / F32(255)).astype(F32)
    silu8[~finite] = 0
    lo = np.where(finite, lo, F32(np.nan)).astype(F32)
    sx = np.where(finite, sx, F32(np.nan)).astype(F32)
    return silu8, lo, sx


def _wrap32(v: np.ndarray) -> np.ndarray:
    return (((v.astype(np.int64) + 2**31) % 2**32) - 2**31).astype(np.int32)


def int8_forward(x: np.ndarray, knots: np.ndarray, order: int, codebook: np.ndarray, indices: np.ndarray,
                 gains: Quantized, biases: Quantized, base: Quantized, consts: Int8Constants | None = None,
                 chunk: int = 64) -> np.ndarray:
    """The int8 mode's outputs (N, out) float32, bit for bit the runtime's.

    x (N, in) float32; knots (in, n_knots); codebook (K, dim) float32 (dequantized); indices
    (out, in); gains/biases/base as stored (ints + per-output scales)."""
    x = np.asarray(x, F32).reshape(-1, indices.shape[1])
    c = consts or int8_constants(codebook, order, gains, biases, base)
    idx = np.asarray(indices, np.int64)
    qg, qb, qw = (q.values.astype(np.int64) for q in (gains, biases, base))
    out = np.empty((x.shape[0], idx.shape[0]), F32)
    arange_in = np.arange(idx.shape[1])[None, :]
    for n0 in range(0, x.shape[0], chunk):
        xs = x[n0 : n0 + chunk]
        values, start, total = bspline_windows(xs, knots, order)
        table = int8_tables(values, start, c.codebook, order).astype(np.int64)  # (n, in, K)
        bsum8 = _rne_u8((total * F32(255)).astype(F32)).astype(np.int64)
        silu8, lo, sx = quantize_silu(silu_q8(xs))
        ag = np.empty((len(xs), idx.shape[0]), np.int64)
        for n in range(len(xs)):
            ag[n] = (qg * table[n][arange_in, idx]).sum(axis=1)
        ag = _wrap32(ag - 128 * c.gain_sum[None, :])
        ab = _wrap32(bsum8 @ qb.T)
        aw = _wrap32(silu8.astype(np.int64) @ qw.T)
        with np.errstate(invalid="ignore", over="ignore"):
            t1 = c.gain_scale[None, :] * ag.astype(F32)
            t2 = c.bias_scale[None, :] * ab.astype(F32)
            t3 = sx[:, None] * aw.astype(F32)
            t4 = lo[:, None] * c.base_sum.astype(np.int32).astype(F32)[None, :]
            out[n0 : n0 + chunk] = (t1 + t2) + c.base_scale[None, :] * (t3 + t4)
    return out
