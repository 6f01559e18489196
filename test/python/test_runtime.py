"""LuthamBackend in the ExecuTorch runtime: registration, parity with eager, batches, the codebook
cache. Needs build/delegate (scripts/build-delegate.sh)."""

from __future__ import annotations

import pytest
import torch

from helpers import build, inputs_for, live_codebooks, rel_l2
from lutham.compress import CompressionConfig
from lutham.model.multihead import ModelConfig
from lutham.run import runtime

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)


def test_backend_registered():
    from executorch.runtime import Runtime

    runtime.load_backend()
    assert "LuthamBackend" in Runtime.get().backend_registry.registered_backend_names
    assert Runtime.get().backend_registry.is_available("LuthamBackend")


def test_fp32_parity_with_eager(fp32_model):
    for seed in range(3):
        x = inputs_for(fp32_model.cfg, seed)
        got = runtime.run_program(fp32_model.lutham_pte, [x])[0]
        with torch.no_grad():
            ref = fp32_model.compressed(x)
        assert got.shape == ref.shape
        assert rel_l2(got, ref) < 1e-5, rel_l2(got, ref)


def test_int8_parity_with_eager(int8_model):
    # int8 changes only the stored values: eager (ops.dequantize) and the C++ kernel use
    # the same dequantized numbers q*scale, so the only difference left is float32
    # summation order, as for fp32: the bound is the same 1e-5.
    for seed in range(3):
        x = inputs_for(int8_model.cfg, seed)
        got = runtime.run_program(int8_model.lutham_pte, [x])[0]
        with torch.no_grad():
            ref = int8_model.compressed(x)
        assert rel_l2(got, ref) < 1e-5, rel_l2(got, ref)


def test_lutham_equals_dense_when_lossless(tmp):
    # K >= edges of every codebook group and fp32 storage: every edge keeps its own
    # shape, so lutham.pte must reproduce dense.pte.
    cfg = ModelConfig(backbone="none", heads=2, widths=[6, 4, 3], grid=5)
    b = build(tmp, "lossless", cfg, CompressionConfig.fp32(codebook_size=2 * 6 * 4), dense=True)
    for seed in range(3):
        x = inputs_for(cfg, seed, wide=False)
        lut = runtime.run_program(b.lutham_pte, [x])[0]
        dense = runtime.run_program(b.dense_pte, [x])[0]
        assert rel_l2(lut, dense) < 1e-4, rel_l2(lut, dense)


def test_batch_greater_than_one(tmp):
    # 11 samples: more than one kernel sample block (8) plus a partial block.
    cfg = ModelConfig(backbone="none", heads=2, widths=[16, 6, 3], grid=5, batch=11)
    b = build(tmp, "batch", cfg, CompressionConfig(codebook_size=32))
    x = inputs_for(cfg, 7)
    got = runtime.run_program(b.lutham_pte, [x])[0]
    with torch.no_grad():
        ref = b.compressed(x)
    assert got.shape == ref.shape and got.shape[0] == 11
    assert rel_l2(got, ref) < 1e-5
    # Each sample equals the same sample run alone through eager.
    with torch.no_grad():
        for n in (0, 8, 10):
            one = b.compressed(x[n : n + 1])
            assert rel_l2(got[n : n + 1], one) < 1e-5


def test_codebook_loaded_once_per_key(int8_model):
    before = runtime.codebook_cache_stats()
    program, method = runtime.load_method(int8_model.lutham_pte)
    during = runtime.codebook_cache_stats()
    # 6 delegates, 2 distinct codebook keys: 2 loads, 4 cache hits.
    assert during["loads"] - before["loads"] == 2
    assert during["hits"] - before["hits"] == 4
    assert during["live"] == before["live"] + 2
    # A second program with the same codebooks shares the live entries.
    program2, method2 = runtime.load_method(int8_model.lutham_pte)
    again = runtime.codebook_cache_stats()
    assert again["loads"] == during["loads"] and again["hits"] - during["hits"] == 6
    x = inputs_for(int8_model.cfg, 1)
    assert torch.equal(method.execute([x])[0], method2.execute([x])[0])
    del method, program, method2, program2
    import gc

    gc.collect()
    assert runtime.codebook_cache_stats()["live"] == before["live"]


def test_shared_codebook_outlives_the_buffer_of_the_program_that_loaded_it(int8_model):
    """Program A is loaded from bytes (ExecuTorch reads them in place and does not own them),
    program B shares A's codebooks. Once A is gone its buffer may be reused: B must not read it."""
    import ctypes

    from executorch.runtime import Runtime

    assert live_codebooks() == 0
    x = inputs_for(int8_model.cfg, 6)
    with torch.no_grad():
        ref = int8_model.compressed(x)
    a_bytes = bytes(bytearray(int8_model.lutham_pte.read_bytes()))
    program_a = Runtime.get().load_program(a_bytes)
    method_a = program_a.load_method("forward")
    before = runtime.codebook_cache_stats()
    program_b = Runtime.get().load_program(int8_model.lutham_pte)
    method_b = program_b.load_method("forward")
    assert runtime.codebook_cache_stats()["hits"] - before["hits"] == 6  # B shares A's entries
    del method_a, program_a
    assert live_codebooks() == 2
    # A is destroyed; what was its buffer now holds other data (we keep `a_bytes` alive only
    # so that overwriting it is safe for this process).
    ctypes.memset(id(a_bytes) + bytes.__basicsize__ - 1, 0x55, len(a_bytes))
    got = method_b.execute([x])[0]
    assert rel_l2(got, ref) < 1e-5, rel_l2(got, ref)
    del method_b, program_b
    assert live_codebooks() == 0
