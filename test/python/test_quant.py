import numpy as np
import pytest

from lutham.compress.quant import pack_bits, quantize_rows, unpack_bits


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_int_quantization_error_is_at_most_half_a_step(bits):
    rng = np.random.default_rng(bits)
    x = rng.normal(size=(17, 33)).astype(np.float32) * rng.uniform(0.01, 10, size=(17, 1)).astype(np.float32)
    q = quantize_rows(x, bits)
    qmax = (1 << (bits - 1)) - 1
    assert q.values.dtype == np.int8 and np.abs(q.values).max() <= qmax
    err = np.abs(q.dequantize() - x)
    # Symmetric rounding: every value within scale/2 of its row's grid (plus float rounding).
    assert np.all(err <= q.scales[:, None] * (0.5 + 1e-5))
    # The row's largest magnitude is represented exactly by +-qmax.
    np.testing.assert_allclose(np.abs(q.dequantize()).max(axis=1), np.abs(x).max(axis=1), rtol=1e-6)


def test_int8_relative_error_bound():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 512)).astype(np.float32)
    q = quantize_rows(x, 8)
    rel = np.linalg.norm(q.dequantize() - x) / np.linalg.norm(x)
    # Uniform rounding error of scale/sqrt(12) per value, scale = max|row| / 127.
    bound = (np.abs(x).max(axis=1) / 127 / np.sqrt(12) * np.sqrt(x.shape[1])).sum() / np.linalg.norm(x) * 2
    assert rel < bound and rel < 0.01


def test_zero_rows_and_float_passthrough():
    x = np.zeros((3, 4), np.float32)
    q = quantize_rows(x, 8)
    assert np.all(q.dequantize() == 0) and np.all(q.scales == 1)
    y = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(quantize_rows(y, 32).dequantize(), y)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8, 11, 16])
@pytest.mark.parametrize("signed", [False, True])
def test_pack_unpack_round_trip(bits, signed):
    rng = np.random.default_rng(bits)
    n = 1001  # not a multiple of 8: the last byte is partial
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    else:
        lo, hi = 0, 1 << bits
    v = rng.integers(lo, hi, size=n)
    data = pack_bits(v, bits)
    assert len(data) == (n * bits + 7) // 8
    assert np.array_equal(unpack_bits(data, bits, n, signed), v)


def test_packing_is_lsb_first():
    # 4-bit values 1, 2 -> one byte 0x21; 3-bit values 1, 7 -> 0b111_001 = 0x39
    assert pack_bits(np.array([1, 2]), 4) == bytes([0x21])
    assert pack_bits(np.array([1, 7]), 3) == bytes([0x39])
    assert pack_bits(np.array([-1]), 4) == bytes([0x0F])
