"""Issue 15.2: a corrupted ExecuTorch program (bytes outside our payloads) never crashes a runtime.
lutham_runner loads with Program::Verification::InternalConsistency (the flatbuffers verifier over
the whole program) and the Python runtime asks for it explicitly. On main 11 of these 40 seeded
flips in the first 2 KB crashed lutham_runner with SIGSEGV inside Method::init."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from lutham.api import export

BUILD = Path(__file__).resolve().parents[2] / "build" / "delegate"
RUNNER = BUILD / "lutham_runner"
SEED, FLIPS, SPAN = 0, 40, 2048


def flips(data: bytes, seed: int, count: int, span: int):
    """(offset, bit, corrupted bytes) of `count` seeded single-bit flips in data[:span]."""
    rng = random.Random(seed)
    for _ in range(count):
        off, bit = rng.randrange(0, min(span, len(data))), rng.randrange(8)
        b = bytearray(data)
        b[off] ^= 1 << bit
        yield off, bit, bytes(b)


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    export({"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4, "codebook_size": 8, "out": str(out), "int8_baseline": False})
    return (out / "lutham.pte").read_bytes()


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built (scripts/build-delegate.sh)")
def test_runner_survives_program_byte_flips(tiny_pte, tmp_path):
    crashed = []
    for off, bit, data in flips(tiny_pte, SEED, FLIPS, SPAN):
        path = tmp_path / "flip.pte"
        path.write_bytes(data)
        r = subprocess.run([str(RUNNER), "--model", str(path), "--repeat", "1"], capture_output=True, timeout=120)
        if r.returncode not in (0, 1):
            crashed.append((off, bit, r.returncode))
        elif r.returncode == 1:
            lines = r.stderr.decode("latin1").strip().splitlines()
            assert lines and lines[-1].startswith("lutham_runner: "), (off, bit, lines)
    assert crashed == [], f"(offset, bit, exit status) of runs that crashed: {crashed}"


def test_python_runtime_loads_with_internal_consistency(monkeypatch, tmp_path, tiny_pte):
    from executorch.runtime import Runtime, Verification

    from lutham.run import runtime

    if not (BUILD / "liblutham_backend.so").is_file():
        pytest.skip("LuthamBackend not built")
    seen = []
    real = Runtime.load_program

    def load_program(self, data, **kw):
        seen.append(kw.get("verification"))
        return real(self, data, **kw)

    monkeypatch.setattr(Runtime, "load_program", load_program)
    (tmp_path / "m.pte").write_bytes(tiny_pte)
    runtime.load_method(tmp_path / "m.pte")
    assert seen == [Verification.InternalConsistency]


def test_load_error_code_has_no_stray_colon(tmp_path, tiny_pte):
    """Issue 15.11: ExecuTorch's "error: 0x:23" was passed on as is; the code reads "error 0x23"."""
    from lutham.run import runtime

    if not (BUILD / "liblutham_backend.so").is_file():
        pytest.skip("LuthamBackend not built")
    data = bytearray(tiny_pte)
    at = data.find(b"LTHM")
    assert at > 0, "no LUTHAM payload in the file"
    data[at + 40] ^= 0xFF  # inside the payload: LuthamBackend refuses it at init
    (tmp_path / "bad.pte").write_bytes(bytes(data))
    with pytest.raises(runtime.RunError) as e:
        runtime.run_file(tmp_path / "bad.pte", repeat=1)
    assert "0x:" not in str(e.value)
    assert "Failed to load method forward, error 0x23 (LuthamBackend: invalid payload" in str(e.value), str(e.value)
