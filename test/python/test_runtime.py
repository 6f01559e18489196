"""LuthamBackend in the ExecuTorch runtime: registration, parity, corrupted payloads, runner.

Needs build/delegate (scripts/build-delegate.sh). Run from the repo root:
    PYTHONPATH=py_bridge .venv/bin/python -m pytest test/python/test_runtime.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from lutham.run import runtime
from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.files import write_atomic
from lutham.model.multihead import ModelConfig, build_model
from lutham.lower.serialization import payload as payload_mod
from lutham.lower.serialization.payload import read_payload, write_payload

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "delegate"
RUNNER = BUILD / "lutham_runner"

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@dataclasses.dataclass
class Built:
    cfg: ModelConfig
    dense: torch.nn.Module
    compressed: torch.nn.Module
    lutham_pte: Path
    dense_pte: Path | None


def build(tmp: Path, name: str, cfg: ModelConfig, comp: CompressionConfig, dense: bool = False) -> Built:
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    compressed, _ = compress_model(model, comp)
    compressed.eval()
    x = cfg.example_input()
    lp = tmp / f"{name}.lutham.pte"
    write_atomic(lp, to_executorch_bytes(compressed, x, True))
    dp = None
    if dense:
        dp = tmp / f"{name}.dense.pte"
        write_atomic(dp, to_executorch_bytes(model, x, False))
    return Built(cfg, model, compressed, lp, dp)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="module")
def int8_model(tmp) -> Built:
    # 3 heads sharing a codebook per depth: 6 delegates, 2 codebooks.
    cfg = ModelConfig(backbone="none", heads=3, widths=[32, 12, 5], grid=5)
    return build(tmp, "int8", cfg, CompressionConfig(codebook_size=64), dense=True)


@pytest.fixture(scope="module")
def fp32_model(tmp) -> Built:
    cfg = ModelConfig(backbone="none", heads=2, widths=[24, 8, 4], grid=6)
    return build(tmp, "fp32", cfg, CompressionConfig.fp32(codebook_size=48))


def inputs_for(cfg: ModelConfig, seed: int, wide: bool = True) -> torch.Tensor:
    """Inputs of the program's shape, spread past the grid range [-1, 1] so that the
    outside-the-grid (all bases zero) and edge-interval cases are exercised too."""
    gen = torch.Generator().manual_seed(seed)
    x = cfg.example_input()
    return torch.rand(x.shape, generator=gen) * (3.0 if wide else 2.0) - (1.5 if wide else 1.0)


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


# ---------------------------------------------------------------- corrupted payloads


def _pte_with(src: Path, dst: Path, edit_payload=None, edit_codebook=None, delegate: int = 0) -> Path:
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    if edit_payload is not None:
        blob = pte.program.backend_delegate_data[delegate]
        blob.data = edit_payload(bytes(blob.data))
    if edit_codebook is not None:
        nd = pte.named_data
        nd.buffers = [edit_codebook(bytes(b)) for b in nd.buffers]
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def _pte_with_rekeyed_codebook(src: Path, dst: Path, edit_codebook) -> Path:
    """Edits codebook 0 and renames it to the content-hash key of its new bytes, in the named
    data and in every payload that uses it."""
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    nd = pte.named_data
    old_key = next(k for k, e in nd.pte_data.items() if e.buffer_index == 0)
    nd.buffers[0] = edit_codebook(bytes(nd.buffers[0]))
    new_key = payload_mod.codebook_key(nd.buffers[0])
    nd.pte_data[new_key] = nd.pte_data.pop(old_key)
    for blob in pte.program.backend_delegate_data:
        _, layer = read_payload(bytes(blob.data))
        if layer.codebook_key == old_key:
            blob.data = write_payload(dataclasses.replace(layer, codebook_key=new_key))
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def _relayer(**changes):
    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        return write_payload(dataclasses.replace(layer, **changes) if changes else layer)

    return edit


def _with_layer(fn):
    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        return write_payload(fn(layer))

    return edit


def _index_ge_k(layer):
    idx = layer.indices.copy()
    idx[0, 0] = layer.codebook_size + 36  # fits in index_bits + 1 bits, >= K
    return dataclasses.replace(layer, indices=idx, index_bits=layer.index_bits + 1)


def _patched(name, replacement):
    """An edit that re-writes the payload with one writer function of serialization.payload replaced."""

    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        original = getattr(payload_mod, name)
        setattr(payload_mod, name, replacement(original))
        try:
            return write_payload(layer)
        finally:
            setattr(payload_mod, name, original)

    return edit


def _flip_middle(data: bytes) -> bytes:
    # The middle of a payload is edge panel data: a flipped bit there still verifies.
    b = bytearray(data)
    b[len(b) // 2] ^= 0x10
    return bytes(b)


def _nan_scale(layer):
    b = layer.biases
    scales = b.scales.copy()
    scales[1] = np.nan
    return dataclasses.replace(layer, biases=dataclasses.replace(b, scales=scales))


def _too_few_index_bits(layer):
    return dataclasses.replace(layer, index_bits=2, indices=layer.indices & 3)


def _unsorted_knots(layer):
    knots = layer.knots.copy()
    knots[0, [2, 3]] = knots[0, [3, 2]]
    return dataclasses.replace(layer, knots=knots)


CORRUPTIONS = {
    "bad_identifier": (lambda d: d[:4] + b"XXXX" + d[8:], "identifier is not LTHM"),
    "truncated": (lambda d: d[: len(d) // 2], "verification"),
    "empty": (lambda d: b"", "too small"),
    "index_ge_k": (_with_layer(_index_ge_k), ">= codebook_size"),
    "wrong_in_features": (_relayer(in_features=33), "panel data has"),  # knots are one shared row: the panels disagree first
    "wrong_grid_size": (_relayer(grid_size=4), "knots has"),
    "wrong_codebook_dim": (_relayer(codebook_dim=9), "codebook_dim"),
    "scales_short": (_patched("_padded_scales", lambda f: lambda q, n: f(q, n)[:-1]), "scales has"),
    "nan_scale": (_with_layer(_nan_scale), "non-finite scale"),
    "checksum_mismatch": (_flip_middle, "checksum mismatch"),
    "checksum_wrong": (_patched("payload_checksum", lambda f: lambda *a: f(*a) ^ 1), "checksum mismatch"),
    "panel_width": (_patched("PANEL_WIDTH", lambda w: 8), "panel width 8"),
    "record_truncated": (_patched("encode_panels", lambda f: lambda layer: (lambda rb, d: (rb, d[:-rb]))(*f(layer))), "panel data has"),
    "index_bits_too_small": (_with_layer(_too_few_index_bits), "index_bits"),
    "unsorted_knots": (_with_layer(_unsorted_knots), "strictly increasing"),
    "missing_codebook": (_relayer(codebook_key="lutham/codebook/none"), "not found"),
    "codebook_size_too_small": (_relayer(codebook_size=63), "is >= codebook_size"),
    "codebook_size_mismatch": (_relayer(codebook_size=65, index_bits=7), "named data holds"),
}


def _expect_load_failure(path: Path, capfd, message: str):
    with pytest.raises(Exception) as err:
        program, method = runtime.load_method(path)
    log = capfd.readouterr().err
    assert "LuthamBackend: invalid" in log, log[-2000:]
    assert message in log, log[-2000:]
    return err


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_payload_fails_cleanly(int8_model, tmp, capfd, name):
    edit, message = CORRUPTIONS[name]
    bad = _pte_with(int8_model.lutham_pte, tmp / f"bad_{name}.pte", edit_payload=edit)
    _expect_load_failure(bad, capfd, message)


def test_schema_version_rejected(int8_model, tmp, capfd):
    future = _patched("SCHEMA_VERSION", lambda v: v + 1)
    bad = _pte_with(int8_model.lutham_pte, tmp / "bad_version.pte", edit_payload=future)
    _expect_load_failure(bad, capfd, f"schema_version {payload_mod.SCHEMA_VERSION + 1}")


@pytest.mark.parametrize(
    "name,edit,message",
    [
        ("cb_identifier", lambda d: d[:4] + b"ZZZZ" + d[8:], "codebook identifier"),
        ("cb_truncated", lambda d: d[: len(d) - 40], "verification"),
    ],
)
def test_corrupted_codebook_fails_cleanly(int8_model, tmp, capfd, name, edit, message):
    # Re-keyed to the edited bytes' hash, as if the writer had produced them: the hash check
    # passes and the structural checks must refuse them.
    bad = _pte_with_rekeyed_codebook(int8_model.lutham_pte, tmp / f"bad_{name}.pte", edit)
    _expect_load_failure(bad, capfd, message)


def test_corrupted_codebook_without_rekey_fails_on_its_hash(int8_model, tmp, capfd):
    bad = _pte_with(int8_model.lutham_pte, tmp / "bad_cb_identifier_hash.pte",
                    edit_codebook=lambda d: d[:4] + b"ZZZZ" + d[8:])
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")


# ---------------------------------------------------------------- codebook integrity


def _flip_codebook_value_byte(index: int):
    """Flips one bit of one byte inside the packed codeword values of codebook `index`: the
    buffer still passes every structural check, only its content hash gives it away."""

    def edit(buffers: list[bytes]) -> list[bytes]:
        from lutham.compress.quant import pack_bits
        from lutham.lower.serialization.payload import read_codebook

        blob = bytearray(buffers[index])
        words = read_codebook(bytes(blob))
        packed = pack_bits(words.values, words.bits)
        at = bytes(blob).find(packed)
        assert at > 0 and bytes(blob).find(packed, at + 1) == -1
        blob[at + len(packed) // 2] ^= 0x04
        return [bytes(blob) if i == index else b for i, b in enumerate(buffers)]

    return edit


def _pte_with_codebooks(src: Path, dst: Path, edit_buffers) -> Path:
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    pte.named_data.buffers = edit_buffers([bytes(b) for b in pte.named_data.buffers])
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def _live_codebooks() -> int:
    import gc

    gc.collect()
    return runtime.codebook_cache_stats()["live"]


def test_corrupted_codebook_byte_fails_init(int8_model, tmp, capfd):
    bad = _pte_with_codebooks(int8_model.lutham_pte, tmp / "cb_flip.pte", _flip_codebook_value_byte(0))
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    assert _live_codebooks() == 0  # the entries of the refused program's good codebook died with it


def test_good_program_after_corrupted_one_gets_its_own_codebook(int8_model, tmp, capfd):
    """A corrupted program loaded first must not leave its codebook in the shared cache for a
    later good program with the same key, nor borrow a good program's live entry."""
    assert _live_codebooks() == 0
    x = inputs_for(int8_model.cfg, 5)
    with torch.no_grad():
        ref = int8_model.compressed(x)
    bad = _pte_with_codebooks(int8_model.lutham_pte, tmp / "cb_flip_first.pte", _flip_codebook_value_byte(1))
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    loads = runtime.codebook_cache_stats()["loads"]
    program, method = runtime.load_method(int8_model.lutham_pte)
    assert runtime.codebook_cache_stats()["loads"] - loads == 2  # both codebooks fetched and checked afresh
    good = method.execute([x])[0]
    assert rel_l2(good, ref) < 1e-5, rel_l2(good, ref)
    # The good program's entries are live now: the corrupted one is still refused.
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    assert torch.equal(method.execute([x])[0], good)
    del method, program
    assert _live_codebooks() == 0


def test_shared_codebook_outlives_the_buffer_of_the_program_that_loaded_it(int8_model):
    """Program A is loaded from bytes (ExecuTorch reads them in place and does not own them),
    program B shares A's codebooks. Once A is gone its buffer may be reused: B must not read it."""
    import ctypes

    from executorch.runtime import Runtime

    assert _live_codebooks() == 0
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
    assert _live_codebooks() == 2
    # A is destroyed; what was its buffer now holds other data (we keep `a_bytes` alive only
    # so that overwriting it is safe for this process).
    ctypes.memset(id(a_bytes) + bytes.__basicsize__ - 1, 0x55, len(a_bytes))
    got = method_b.execute([x])[0]
    assert rel_l2(got, ref) < 1e-5, rel_l2(got, ref)
    del method_b, program_b
    assert _live_codebooks() == 0


def test_random_byte_flips_never_crash(int8_model, tmp):
    """Single-byte corruptions anywhere in a payload: load fails cleanly or runs; no crash.
    Runs in a subprocess so that a crash is reported as a failure, not as a dead pytest."""
    script = f"""
import random, sys
sys.path.insert(0, {str(ROOT / 'py_bridge')!r})
import torch
from lutham.run import runtime
from test_runtime_helpers import flip_pte
ok = fail = 0
rng = random.Random(0)
x = torch.zeros({list(int8_model.cfg.example_input().shape)!r})
for trial in range(60):
    path = flip_pte({str(int8_model.lutham_pte)!r}, {str(tmp)!r} + '/flip.pte', rng)
    try:
        prog, m = runtime.load_method(path)
        m.execute([x]); ok += 1
    except Exception:
        fail += 1
print('ok', ok, 'fail', fail)
"""
    helpers = tmp / "test_runtime_helpers.py"
    helpers.write_text(
        "import random\n"
        "from pathlib import Path\n"
        "from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary\n"
        "def flip_pte(src, dst, rng):\n"
        "    pte = deserialize_pte_binary(Path(src).read_bytes())\n"
        "    blob = pte.program.backend_delegate_data[rng.randrange(len(pte.program.backend_delegate_data))]\n"
        "    d = bytearray(blob.data)\n"
        "    for _ in range(rng.choice([1, 1, 2, 4])):\n"
        "        d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)\n"
        "    blob.data = bytes(d)\n"
        "    Path(dst).write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))\n"
        "    return dst\n"
    )
    r = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", script],
        cwd=tmp, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{tmp}:{ROOT / 'py_bridge'}", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


# ---------------------------------------------------------------- lutham_runner


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
@pytest.mark.parametrize("which", ["lutham", "dense"])
def test_runner_matches_python_runtime(int8_model, tmp, which):
    pte = int8_model.lutham_pte if which == "lutham" else int8_model.dense_pte
    x = inputs_for(int8_model.cfg, 3)
    xin, yout = tmp / f"x_{which}.bin", tmp / f"y_{which}.bin"
    x.numpy().astype("<f4").tofile(xin)
    r = subprocess.run(
        [str(RUNNER), "--model", str(pte), "--input", str(xin), "--output", str(yout), "--repeat", "3", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    ref = runtime.run_program(pte, [x])[0]
    assert info["outputs"] == [list(ref.shape)]
    got = torch.from_numpy(np.fromfile(yout, dtype="<f4")).reshape(ref.shape)
    assert torch.equal(got, ref)  # same runtime, same kernels: bit-identical
    assert info["repeat"] == 3 and info["median_ms"] > 0


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
@pytest.mark.parametrize("batch", [1, 11])
def test_same_bits_with_any_thread_count_and_code_path(int8_model, tmp, batch):
    """The kernel splits work by thread count and picks AVX2 or portable loops at run time:
    neither may change a single bit of the outputs (batch 1: lane path; 11: sample path)."""
    if batch == 1:
        pte, cfg = int8_model.lutham_pte, int8_model.cfg
    else:
        cfg = ModelConfig(backbone="none", heads=2, widths=[40, 20, 5], grid=5, batch=batch)
        pte = build(tmp, f"threads{batch}", cfg, CompressionConfig(codebook_size=16)).lutham_pte
    xin = tmp / f"x_threads{batch}.bin"
    inputs_for(cfg, 5).numpy().astype("<f4").tofile(xin)
    outs = {}
    for name, env in {"1 thread": {"LUTHAM_THREADS": "1"}, "2 threads": {"LUTHAM_THREADS": "2"},
                      "portable loops": {"LUTHAM_ISA": "generic", "LUTHAM_THREADS": "2"}}.items():
        y = tmp / f"y_threads{batch}_{name.replace(' ', '_')}.bin"
        r = subprocess.run([str(RUNNER), "--model", str(pte), "--input", str(xin), "--output", str(y), "--repeat", "1"],
                           capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert r.returncode == 0, (name, r.stderr[-2000:])
        outs[name] = y.read_bytes()
    assert len(outs["1 thread"]) == 4 * batch * cfg.head_widths()[-1] * cfg.heads
    assert outs["1 thread"] == outs["2 threads"] == outs["portable loops"]


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_rejects_corrupted_payload(int8_model, tmp):
    bad = _pte_with(int8_model.lutham_pte, tmp / "runner_bad.pte", edit_payload=CORRUPTIONS["index_ge_k"][0])
    r = subprocess.run([str(RUNNER), "--model", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "LuthamBackend: invalid payload" in r.stderr
    assert "loading method 'forward' failed" in r.stderr


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
@pytest.mark.parametrize(
    "flag,value",
    [("--seed", "abc"), ("--seed", "-1"), ("--seed", "1.5"), ("--seed", ""), ("--seed", " 7"), ("--seed", "0x10"),
     ("--seed", "18446744073709551616"), ("--repeat", "abc"), ("--repeat", "0"), ("--repeat", "1e3"),
     ("--repeat", "3x"), ("--repeat", "-2"), ("--repeat", "4294967297")],
)
def test_runner_rejects_non_numeric_flags(int8_model, flag, value):
    r = subprocess.run([str(RUNNER), "--model", str(int8_model.lutham_pte), flag, value],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lutham_runner: {flag} must be an integer from ") and f"got '{value}'" in lines[0]


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_numeric_flags_take_their_values(int8_model):
    def checksum(*extra: str) -> dict:
        r = subprocess.run([str(RUNNER), "--model", str(int8_model.lutham_pte), "--json", *extra],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    seven = checksum("--seed", "7", "--repeat", "2")
    assert seven["repeat"] == 2
    assert checksum("--seed", "7", "--repeat", "1")["fnv1a64"] == seven["fnv1a64"]
    assert checksum("--seed", "0", "--repeat", "1")["fnv1a64"] != seven["fnv1a64"]
    assert checksum("--seed", "18446744073709551615", "--repeat", "1")["fnv1a64"] != seven["fnv1a64"]
    r = subprocess.run([str(RUNNER), "--model", str(int8_model.lutham_pte), "--seed"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == "lutham_runner: missing value after --seed\n"


# ---------------------------------------------------------------- aarch64 under qemu

ARM_RUNNER = ROOT / "build" / "delegate-aarch64" / "lutham_runner"
QEMU = shutil.which("qemu-aarch64")
ARM_SYSROOT = Path("/usr/aarch64-linux-gnu")


@pytest.mark.skipif(
    not (ARM_RUNNER.is_file() and QEMU and ARM_SYSROOT.is_dir()),
    reason="aarch64 check needs `scripts/build-delegate.sh aarch64` (g++-aarch64-linux-gnu, the aarch64 "
    "executorch wheel) and qemu-user (qemu-aarch64)",
)
@pytest.mark.parametrize("which", ["lutham", "dense"])
def test_aarch64_runner_matches_x86(int8_model, tmp, which):
    pte = int8_model.lutham_pte if which == "lutham" else int8_model.dense_pte
    x = inputs_for(int8_model.cfg, 4)
    xin = tmp / f"x_arm_{which}.bin"
    x.numpy().astype("<f4").tofile(xin)
    outs = {}
    for arch, cmd in [("x86", [str(RUNNER)]), ("arm", [QEMU, "-L", str(ARM_SYSROOT), str(ARM_RUNNER)])]:
        y = tmp / f"y_{arch}_{which}.bin"
        r = subprocess.run(cmd + ["--model", str(pte), "--input", str(xin), "--output", str(y), "--repeat", "1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (arch, r.stderr[-2000:])
        outs[arch] = torch.from_numpy(np.fromfile(y, dtype="<f4"))
    if which == "lutham":
        # Built with -ffp-contract=off: the LUTHAM kernel gives the same bits on both.
        assert torch.equal(outs["x86"], outs["arm"])
    else:
        # ExecuTorch's own optimized kernels differ per architecture (vectorization, FMA).
        assert rel_l2(outs["arm"], outs["x86"]) < 1e-5


@pytest.mark.skipif(
    not ((ROOT / "build" / "delegate-aarch64" / "lutham_kernel_test").is_file() and QEMU and ARM_SYSROOT.is_dir()),
    reason="needs `scripts/build-delegate.sh aarch64` and qemu-user (qemu-aarch64)",
)
def test_aarch64_kernel_matches_its_reference():
    """The aarch64 build's kernel (the portable loops, vectorized for NEON by the compiler) on every
    path — lane and sample, table and direct, int/float values, B-spline and RBF — bit for bit
    against the scalar reference (the same check ctest runs on x86-64 for both variants)."""
    r = subprocess.run([QEMU, "-L", str(ARM_SYSROOT), str(ROOT / "build" / "delegate-aarch64" / "lutham_kernel_test")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "kernel_test: ok" in r.stdout, r.stderr[-2000:]


def test_run_file_reads_npy_inputs_and_writes_the_output(int8_model, tmp):
    x = inputs_for(int8_model.cfg, 9)
    np.save(tmp / "run_x.npy", x.numpy())
    info = runtime.run_file(str(int8_model.lutham_pte), [str(tmp / "run_x.npy")], str(tmp / "run_y.npy"), repeat=2)
    with torch.no_grad():
        ref = int8_model.compressed(x)
    assert info["outputs"] == [list(ref.shape)] and info["repeat"] == 2
    assert rel_l2(torch.from_numpy(np.load(tmp / "run_y.npy")), ref) < 1e-5
