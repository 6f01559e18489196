"""The int8 compute mode (`lutham export --compute int8`, compress/int8.py, the kernel's int8 loops):
the programs run through LuthamBackend give the eager op's outputs bit for bit, close to the float
mode's; what the mode cannot take is refused with one line; float payloads are unchanged."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from helpers import build, inputs_for, rel_l2
from lutham.compress import CompressionConfig
from lutham.compress.int8 import (COMPUTE_INT8, bspline_windows, int8_constants, int8_forward, quantize_silu,
                                  set_compute, silu_q8)
from lutham.compress.layer import SharedKANLinear
from lutham.compress.quant import Quantized
from lutham.lower.serialization import payload as payload_mod
from lutham.lower.serialization.payload import (COMPUTE_FLOAT, LayerData, codebook_key, read_payload, write_codebook,
                                                write_payload)
from lutham.model.kan import RBF, b_splines, uniform_knots
from lutham.model.multihead import ModelConfig
from lutham.run import runtime

needs_backend = pytest.mark.skipif(not runtime.library_path().is_file(),
                                   reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh")


def _layer(rng, inn, out, bits=(6, 4, 5), K=32, grid=5, order=3) -> tuple[LayerData, Quantized]:
    def field(b):
        q = (1 << (b - 1)) - 1
        return Quantized(rng.integers(-q, q + 1, size=(out, inn)).astype(np.int8), rng.uniform(0.01, 0.1, size=out).astype(np.float32), b)

    words = Quantized(rng.integers(-127, 128, size=(K, grid + order)).astype(np.int8), rng.uniform(0.001, 0.02, size=K).astype(np.float32), 8)
    layer = LayerData(in_features=inn, out_features=out, grid_size=grid, spline_order=order,
                      knots=uniform_knots(inn, grid, order).numpy(), codebook_key=codebook_key(write_codebook(words)),
                      codebook_size=K, codebook_dim=grid + order, index_bits=max(1, int(np.ceil(np.log2(K)))),
                      indices=rng.integers(0, K, size=(out, inn)), gains=field(bits[0]), biases=field(bits[1]),
                      base_weight=field(bits[2]))
    return layer, words


def test_float_payloads_are_byte_identical_to_schema_version_2():
    # sha256 of these seeded payloads as the writer before the int8 mode wrote them (main, df77236).
    rng = np.random.default_rng(7)
    words = Quantized(rng.integers(-127, 128, size=(32, 8)).astype(np.int8), rng.uniform(0.001, 0.02, size=32).astype(np.float32), 8)
    digests = []
    for inn, o, bits in [(37, 40, (6, 4, 5)), (9, 3, (8, 8, 8))]:
        def field(b):
            q = (1 << (b - 1)) - 1
            return Quantized(rng.integers(-q, q + 1, size=(o, inn)).astype(np.int8), rng.uniform(0.01, 0.1, size=o).astype(np.float32), b)
        layer = LayerData(in_features=inn, out_features=o, grid_size=5, spline_order=3, knots=uniform_knots(inn, 5, 3).numpy(),
                          codebook_key=codebook_key(write_codebook(words)), codebook_size=32, codebook_dim=8, index_bits=5,
                          indices=rng.integers(0, 32, size=(o, inn)), gains=field(bits[0]), biases=field(bits[1]),
                          base_weight=field(bits[2]))
        digests.append(hashlib.sha256(write_payload(layer)).hexdigest())
    assert digests == ["5237e4796cebd8605f591b6ef30201bbcbc40b8a6be4292389db261d29eb880c",
                       "a43c88d1d28eaa6f42395a76f7de682b971ab1bf60f682cd8ac89f805c3f011b"]


@pytest.mark.parametrize("shape", [(37, 40, (6, 4, 5)), (8, 3, (8, 8, 8)), (5, 17, (2, 3, 4))])
def test_int8_payload_round_trip(shape):
    inn, out, bits = shape
    layer, _ = _layer(np.random.default_rng(1), inn, out, bits)
    layer.compute = COMPUTE_INT8
    version, back = read_payload(write_payload(layer))
    assert version == payload_mod.SCHEMA_VERSION_INT8 == 3
    assert back.compute == COMPUTE_INT8
    assert (back.indices == layer.indices).all()
    for a, b in zip((back.gains, back.biases, back.base_weight), (layer.gains, layer.biases, layer.base_weight)):
        assert (a.values == b.values).all() and (a.scales == b.scales).all()
    assert COMPUTE_FLOAT == 0 and COMPUTE_INT8 == 1  # the generated enum and compress/int8.py agree


def test_int8_writer_refuses_what_the_mode_cannot_take():
    layer, _ = _layer(np.random.default_rng(2), 6, 4)
    for change, message in [({"basis_kind": RBF}, "RBF"), ({"codebook_size": 300, "index_bits": 9}, "at most 256 words")]:
        bad = dataclasses.replace(layer, compute=COMPUTE_INT8, **change)
        with pytest.raises(ValueError, match=message):
            write_payload(bad)


def test_bspline_windows_match_the_dense_bases():
    # The reciprocal-knot Cox-de Boor is the dense efficient-kan basis to float32 rounding, and
    # its window holds every non-zero basis.
    knots = uniform_knots(6, 7, 3).numpy()
    x = np.random.default_rng(3).uniform(-2.2, 2.2, size=(50, 6)).astype(np.float32)
    values, start, total = bspline_windows(x, knots, 3)
    dense = b_splines(torch.from_numpy(x), torch.from_numpy(knots), 3).numpy()
    window = np.zeros_like(dense)
    for q in range(4):
        np.put_along_axis(window, (start + q)[..., None], values[..., q : q + 1], axis=2)
    np.testing.assert_allclose(window, dense, atol=3e-7)
    np.testing.assert_allclose(total, dense.sum(-1), atol=1e-6)


def test_silu_q8_is_silu():
    x = np.linspace(-30, 30, 20001, dtype=np.float32)
    ref = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(silu_q8(x), ref, rtol=3e-7, atol=1e-30)


def test_silu_quantization_and_nan():
    silu8, lo, sx = quantize_silu(np.array([[-0.25, 0.0, 1.0, 3.0], [0.5, np.nan, 1.0, 2.0]], np.float32))
    assert list(silu8[0]) == [0, 20, 98, 255] and lo[0] == np.float32(-0.25) and sx[0] == np.float32(3.25) / np.float32(255)
    assert list(silu8[1]) == [0, 0, 0, 0] and np.isnan(lo[1]) and np.isnan(sx[1])


def test_int8_forward_is_close_to_the_float_mode():
    rng = np.random.default_rng(4)
    layer, words = _layer(rng, 300, 70, K=128, grid=9)
    codebook = words.dequantize()
    x = rng.uniform(-1.1, 1.1, size=(16, 300)).astype(np.float32)
    y8 = int8_forward(x, layer.knots, 3, codebook, layer.indices, layer.gains, layer.biases, layer.base_weight)
    # The float mode's math in float64: base * silu + gain * (B . codeword) + bias * sum B.
    xt = torch.from_numpy(x).double()
    b = b_splines(xt, torch.from_numpy(layer.knots).double(), 3).numpy()
    coef = np.einsum("nid,oid->noi", b, codebook.astype(np.float64)[layer.indices])
    g, bi, w = (q.dequantize().astype(np.float64) for q in (layer.gains, layer.biases, layer.base_weight))
    ref = (xt * torch.sigmoid(xt)).numpy() @ w.T + np.einsum("oi,noi->no", g, coef) + b.sum(-1) @ bi.T
    err = np.linalg.norm(y8 - ref) / np.linalg.norm(ref)
    # ~1.2% here: random codewords whose scales differ 20x share one table scale (trained
    # codebooks hold unit-norm shapes; BENCHMARKS.md has the accuracy on Fashion-MNIST).
    assert err < 0.02, err
    c = int8_constants(codebook, 3, layer.gains, layer.biases, layer.base_weight)
    assert np.abs(c.codebook).max() == 127 and c.codebook_scale == np.float32(np.abs(codebook).max() / np.float32(127))


def test_set_compute_refuses_layers_the_mode_cannot_take():
    cfg = ModelConfig(backbone="none", heads=1, widths=[8, 4], grid=4)
    from lutham.compress import compress_model
    from lutham.model.multihead import build_model

    fp32, _ = compress_model(build_model(cfg), CompressionConfig.fp32(codebook_size=8))
    with pytest.raises(ValueError, match=r"--compute int8: layer heads\.0\.layers\.0: .*integer gains"):
        set_compute(fp32, "int8")
    with pytest.raises(ValueError, match="--compute must be float or int8"):
        set_compute(fp32, "int4")


@pytest.fixture(scope="module")
def int8_program(tmp_path_factory):
    """3 heads 40 -> 12 -> 5 (inputs not a multiple of 4), K = 64, exported in the int8 mode with a
    dynamic batch up to 32."""
    cfg = ModelConfig(backbone="none", heads=3, widths=[42, 12, 5], grid=5, batch=2)
    built = build(tmp_path_factory.mktemp("int8"), "int8mode", cfg, CompressionConfig(codebook_size=64), dense=False,
                  compute="int8", max_batch=32)
    return built


@needs_backend
@pytest.mark.parametrize("batch", [1, 3, 8, 32])
def test_int8_program_matches_the_eager_op_bit_for_bit(int8_program, batch):
    cfg = dataclasses.replace(int8_program.cfg, batch=batch)
    x = inputs_for(cfg, seed=batch)
    x[0, 5] = 0.0
    with torch.no_grad():
        eager = int8_program.compressed(x)
    got = runtime.run_program(int8_program.lutham_pte, [x])[0]
    assert got.shape == eager.shape
    assert torch.equal(got.view(torch.int32), eager.view(torch.int32)), (got - eager).abs().max()
    # ... and the float mode of the same compressed model is close.
    float_model = int8_program.compressed
    set_compute(float_model, "float")
    try:
        with torch.no_grad():
            assert rel_l2(eager, float_model(x)) < 0.03
    finally:
        set_compute(float_model, "int8")


@needs_backend
def test_int8_program_payloads_say_int8(int8_program):
    from helpers import _delegate_payloads

    _, payloads = _delegate_payloads(int8_program.lutham_pte.read_bytes())
    assert len(payloads) == 6
    for p in payloads:
        version, layer = read_payload(p)
        assert (version, layer.compute) == (3, COMPUTE_INT8)


def test_export_refuses_int8_with_fp32_and_big_codebooks(tmp_path):
    from lutham.exporter.pipeline import export

    base = {"backbone": "none", "heads": 1, "widths": [8, 4], "grid": 4, "out": str(tmp_path / "o"), "compute": "int8"}
    with pytest.raises(ValueError, match="--compute int8 needs integer gains"):
        export(base | {"int8": False})
    with pytest.raises(ValueError, match="at most 256 words"):
        export(base | {"codebook_size": 512})
    with pytest.raises(ValueError, match="--compute must be float or int8"):
        export(base | {"compute": "int16"})


def test_shared_layer_default_is_float():
    assert SharedKANLinear.__init__.__kwdefaults__["compute"] == 0
