"""build/delegate/lutham_runner (and its aarch64 build under QEMU): the same bits as the Python
runtime, any thread count, bad flags refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, RUNNER, build, inputs_for, rel_l2
from lutham.compress import CompressionConfig
from lutham.model.multihead import ModelConfig
from lutham.run import runtime

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)


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


@pytest.fixture(scope="module")
def int8_mode_model(tmp):
    """3 heads 42 -> 12 -> 5 exported with --compute int8 (the int8 mode's grouped records)."""
    cfg = ModelConfig(backbone="none", heads=3, widths=[42, 12, 5], grid=5)
    return build(tmp, "int8mode", cfg, CompressionConfig(codebook_size=64), compute="int8")


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
@pytest.mark.parametrize("batch", [1, 11, "int8 mode 1", "int8 mode 6"])
def test_same_bits_with_any_thread_count_and_code_path(int8_model, tmp, batch):
    """The kernel splits work by thread count and picks AVX2 or portable loops at run time:
    neither may change a single bit of the outputs (batch 1: lane path; 11: sample path; the
    int8 mode's lane and batch paths)."""
    if batch == 1:
        pte, cfg = int8_model.lutham_pte, int8_model.cfg
    elif isinstance(batch, str):
        n = int(batch.split()[-1])
        cfg = ModelConfig(backbone="none", heads=2, widths=[42, 20, 5], grid=5, batch=n)
        pte = build(tmp, f"threads_int8_{n}", cfg, CompressionConfig(codebook_size=16), compute="int8").lutham_pte
        batch = f"int8_{n}"
    else:
        cfg = ModelConfig(backbone="none", heads=2, widths=[40, 20, 5], grid=5, batch=batch)
        pte = build(tmp, f"threads{batch}", cfg, CompressionConfig(codebook_size=16)).lutham_pte
    xin = tmp / f"x_threads{batch}.bin"
    inputs_for(cfg, 5).numpy().astype("<f4").tofile(xin)
    outs, ran = {}, {}
    # LUTHAM_ISA names a variant; one this CPU cannot run falls back to the default (ran says which).
    for name, env in {"1 thread": {"LUTHAM_THREADS": "1"}, "2 threads": {"LUTHAM_THREADS": "2"},
                      "portable loops": {"LUTHAM_ISA": "generic", "LUTHAM_THREADS": "2"},
                      "avx2 loops": {"LUTHAM_ISA": "avx2", "LUTHAM_THREADS": "2"},
                      "avx512 loops": {"LUTHAM_ISA": "avx512", "LUTHAM_THREADS": "2"},
                      "avx512vnni loops": {"LUTHAM_ISA": "avx512vnni", "LUTHAM_THREADS": "2"}}.items():
        y = tmp / f"y_threads{batch}_{name.replace(' ', '_')}.bin"
        r = subprocess.run([str(RUNNER), "--model", str(pte), "--input", str(xin), "--output", str(y), "--repeat", "1",
                            "--json"], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert r.returncode == 0, (name, r.stderr[-2000:])
        outs[name] = y.read_bytes()
        ran[name] = json.loads(r.stdout.strip().splitlines()[-1])["kernel_isa"]
    print(f"kernel variants run: {ran}")
    assert ran["portable loops"] == "generic"
    assert len(outs["1 thread"]) == 4 * cfg.batch * cfg.head_widths()[-1] * cfg.heads
    assert len(set(outs.values())) == 1, {name: hash(o) for name, o in outs.items()}


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


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_batch_flag_sets_the_rows_and_refuses_more_than_the_program_takes(int8_model):
    pte = str(int8_model.lutham_pte)
    r = subprocess.run([str(RUNNER), "--model", pte, "--batch", "1", "--repeat", "1", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    declared = json.loads(r.stdout.strip().splitlines()[-1])["outputs"][0]
    assert declared[0] == 1
    r = subprocess.run([str(RUNNER), "--model", pte, "--batch", "5", "--repeat", "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("lutham_runner: --batch 5: input 0 [") and "takes at most" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- aarch64 under qemu

ARM_RUNNER = ROOT / "build" / "delegate-aarch64" / "lutham_runner"
QEMU = shutil.which("qemu-aarch64")
ARM_SYSROOT = Path("/usr/aarch64-linux-gnu")


@pytest.mark.skipif(
    not (ARM_RUNNER.is_file() and QEMU and ARM_SYSROOT.is_dir()),
    reason="aarch64 check needs `scripts/build-delegate.sh aarch64` (g++-aarch64-linux-gnu, the aarch64 "
    "executorch wheel) and qemu-user (qemu-aarch64)",
)
@pytest.mark.parametrize("which", ["lutham", "dense", "int8 mode"])
def test_aarch64_runner_matches_x86(int8_model, int8_mode_model, tmp, which):
    model = int8_mode_model if which == "int8 mode" else int8_model
    pte = model.dense_pte if which == "dense" else model.lutham_pte
    which = which.replace(" ", "_")
    x = inputs_for(model.cfg, 4)
    xin = tmp / f"x_arm_{which}.bin"
    x.numpy().astype("<f4").tofile(xin)
    outs = {}
    for arch, cmd in [("x86", [str(RUNNER)]), ("arm", [QEMU, "-L", str(ARM_SYSROOT), str(ARM_RUNNER)])]:
        y = tmp / f"y_{arch}_{which}.bin"
        r = subprocess.run(cmd + ["--model", str(pte), "--input", str(xin), "--output", str(y), "--repeat", "1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (arch, r.stderr[-2000:])
        outs[arch] = torch.from_numpy(np.fromfile(y, dtype="<f4"))
    if which != "dense":
        # Built with -ffp-contract=off: the LUTHAM kernel gives the same bits on both (the int8
        # mode: avx512vnni or the portable loops here, neondot under qemu).
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


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_etdump_parses_with_the_inspector(etrecord_export, tmp):
    """lutham_runner --etdump: ExecuTorch's ETDumpGen in the C++ runner, read by the Inspector
    with the export's ETRecord: every KAN layer by name, one call per run; same output bits."""
    from lutham.run.profile import BACKEND_NAME, profile_table

    out, _ = etrecord_export
    etdump = tmp / "runner.etdp"
    base = [str(RUNNER), "--model", str(out / "lutham.pte"), "--repeat", "4", "--warmup", "1", "--json"]
    r = subprocess.run(base + ["--etdump", str(etdump)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    plain = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert json.loads(r.stdout)["fnv1a64"] == json.loads(plain.stdout)["fnv1a64"]
    p = profile_table(etdump, out / "lutham.etrecord")
    rows = [row for row in p["rows"] if row["backend"] == BACKEND_NAME]
    assert sorted(row["layer"] for row in rows) == sorted(f"heads.{h}.layers.{l}" for h in range(3) for l in range(2))
    assert p["runs"] == 5 and all(row["calls"] == 5 for row in rows)  # the warm-up run is recorded too


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_checks_the_folders_it_writes_into_before_running(int8_model, tmp):
    """--etdump/--output into a folder that does not exist: one line and exit 2 (like the other
    flag errors) before the program is loaded, not after every run."""
    for flag, name in (("--etdump", "x.etdp"), ("--output", "y.bin")):
        target = tmp / "missing" / name
        r = subprocess.run([str(RUNNER), "--model", str(int8_model.lutham_pte), flag, str(target), "--repeat", "1000000000"],
                           capture_output=True, text=True, timeout=60)  # a billion runs would not end within the timeout
        assert (r.returncode, r.stdout) == (2, "")
        assert r.stderr.strip() == f"lutham_runner: cannot write {flag} {target}: no such directory {tmp / 'missing'}"


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_runs_one_method_of_a_per_head_program(per_head_model, int8_model, tmp):
    """lutham_runner --method head_2: the Python runtime's bits for that method; an unknown
    name is refused before any run, listing the program's methods in reading order."""
    x = inputs_for(int8_model.cfg, 5)
    xin, yout = tmp / "x_method.bin", tmp / "y_method.bin"
    x.numpy().astype("<f4").tofile(xin)
    r = subprocess.run([str(RUNNER), "--model", str(per_head_model), "--method", "head_2", "--input", str(xin),
                        "--output", str(yout), "--repeat", "2", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout)
    assert info["method"] == "head_2" and info["outputs"] == [[1, 5]]
    ref = runtime.run_program(per_head_model, [x], method="head_2")[0]
    assert torch.equal(torch.from_numpy(np.fromfile(yout, dtype="<f4")).reshape(ref.shape), ref)
    assert torch.equal(ref, runtime.run_program(per_head_model, [x])[0][:, 2])
    bad = subprocess.run([str(RUNNER), "--model", str(per_head_model), "--method", "head_3"], capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.strip() == f"lutham_runner: {per_head_model} has no method 'head_3' (it has: forward, head_0, head_1, head_2)"
