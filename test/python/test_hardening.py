"""Issue 9, the Python side: output sets, checkpoints, non-finite values, memory, `run` on bad files."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import export_bytes, small_pair
from lutham import runtime
from lutham.api import export
from lutham.models import ModelConfig, build_model
from lutham.outputs import OutputSet

NAMES = ("dense.pte", "lutham.pte", "report.json")


def _opts(out, **kw):
    return {"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4, "codebook_size": 8, "out": str(out)} | kw


def _listing(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _old_set(directory):
    directory.mkdir(parents=True, exist_ok=True)
    for n in NAMES:
        (directory / n).write_text(f"old {n}")
    return _listing(directory)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


class _FileSizeLimit:
    """RLIMIT_FSIZE: a write past `limit` bytes fails with EFBIG, as a full disk fails with ENOSPC
    (Python ignores SIGXFSZ, so the write raises instead of killing the process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.old[1]))

    def __exit__(self, *exc):
        if hasattr(self, "old"):
            resource.setrlimit(resource.RLIMIT_FSIZE, self.old)


# ------------------------------------------------------------------ outputs (9.2)


def test_output_set_failing_midway_keeps_the_old_set_and_no_temp(tmp_path):
    before = _old_set(tmp_path)
    outputs = OutputSet(tmp_path, NAMES)
    outputs.prepare()
    outputs.add("dense.pte", b"d" * 100)  # written to its temp file first
    outputs.add("lutham.pte", b"l" * 100_000)  # fails: past the limit
    outputs.add("report.json", b"{}")
    with _FileSizeLimit(10_000), pytest.raises(ValueError, match=r"cannot write .*lutham\.pte: File too large"):
        outputs.commit()
    assert _listing(tmp_path) == before


def test_output_set_commit_replaces_all(tmp_path):
    _old_set(tmp_path)
    outputs = OutputSet(tmp_path, NAMES)
    outputs.prepare()
    for i, n in enumerate(NAMES):
        outputs.add(n, bytes([i]) * (i + 1))
    assert outputs.commit() == {"dense.pte": 1, "lutham.pte": 2, "report.json": 3}
    assert _listing(tmp_path) == {"dense.pte": b"\0", "lutham.pte": b"\1\1", "report.json": b"\2\2\2"}


def _replace_failing_at(call: int, error: BaseException):
    """os.replace that raises `error` on its `call`-th use (1-based) and works otherwise."""
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == call:
            raise error
        return real(src, dst)

    return replace


def _commit_new_set(directory):
    outputs = OutputSet(directory, NAMES)
    outputs.prepare()
    for n in NAMES:
        outputs.add(n, f"new {n}".encode())
    return outputs


@pytest.mark.parametrize("had_old_set", [True, False])
def test_output_set_rename_failing_midway_rolls_back(tmp_path, monkeypatch, had_old_set):
    before = _old_set(tmp_path) if had_old_set else {}
    outputs = _commit_new_set(tmp_path)
    monkeypatch.setattr(os, "replace", _replace_failing_at(2, PermissionError(13, "Permission denied")))
    with pytest.raises(ValueError, match=r"cannot write .*lutham\.pte: Permission denied"):
        outputs.commit()
    assert _listing(tmp_path) == before  # dense.pte was renamed first and is back (or gone); no temp, backup, journal


def test_output_set_interrupted_during_renames_finishes_the_set(tmp_path, monkeypatch):
    _old_set(tmp_path)
    outputs = _commit_new_set(tmp_path)
    monkeypatch.setattr(os, "replace", _replace_failing_at(2, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        outputs.commit()
    assert _listing(tmp_path) == {n: f"new {n}".encode() for n in NAMES}


_KILLED_DURING_COMMIT = r"""
import os, signal, sys
from pathlib import Path
from lutham.outputs import OutputSet
real, calls = os.replace, []
def replace(src, dst):
    calls.append(dst)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.{signal})  # {why}
    return real(src, dst)
os.replace = replace
{setup}
outputs = OutputSet(Path(sys.argv[1]), ("dense.pte", "lutham.pte", "report.json"))
outputs.prepare()
for n in ("dense.pte", "lutham.pte", "report.json"):
    outputs.add(n, f"new {{n}}".encode())
outputs.commit()
"""


def test_output_set_killed_during_renames_is_finished_by_the_next_export(tmp_path):
    before = _old_set(tmp_path)
    src = _KILLED_DURING_COMMIT.format(signal="SIGKILL", why="power loss, OOM killer: nothing runs after this", setup="")
    child = subprocess.run([sys.executable, "-c", src, str(tmp_path)], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), timeout=120)
    assert child.returncode == -9
    after = _listing(tmp_path)
    assert after["dense.pte"] == b"new dense.pte" and after["lutham.pte"] == before["lutham.pte"]  # split, for now
    assert any(n.startswith(".lutham-commit.") for n in after)
    OutputSet(tmp_path, NAMES).prepare()  # what the next export into this directory does first
    assert _listing(tmp_path) == {n: f"new {n}".encode() for n in NAMES}


def test_output_set_sigterm_during_renames_exits_after_the_set_is_whole(tmp_path):
    _old_set(tmp_path)
    # The CLI's child: the lifeline's handlers are installed (the parent is this test's process).
    setup = "from lutham import lifeline\nlifeline.install()"
    src = _KILLED_DURING_COMMIT.format(signal="SIGTERM", why="what PDEATHSIG or the CLI sends", setup=setup)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), LUTHAM_PARENT_PID=str(os.getpid()))
    child = subprocess.run([sys.executable, "-c", src, str(tmp_path)], env=env, timeout=120)
    assert child.returncode == 128 + 15
    assert _listing(tmp_path) == {n: f"new {n}".encode() for n in NAMES}


def test_output_set_torn_and_live_journals(tmp_path):
    before = _old_set(tmp_path)
    dead, live = _dead_pid(), os.getppid()
    # A journal cut short while being written: no rename had started, so the old set stands.
    (tmp_path / f".lutham-commit.{dead}.0badc0de.json").write_text('{"renames": [{"target": "dense.p')
    (tmp_path / f".dense.pte.{dead}.0badc0de.tmp").write_bytes(b"half")
    # A running export's journal and temp are its own business.
    running = {f".lutham-commit.{live}.0badc0de.json": b"{}", f".dense.pte.{live}.0badc0de.tmp": b"x"}
    for n, b in running.items():
        (tmp_path / n).write_bytes(b)
    # A journal naming files that are not ours is dropped without renaming anything.
    (tmp_path / "precious.txt").write_bytes(b"mine")
    (tmp_path / f".lutham-commit.{dead}.0ddba11.json").write_text(
        json.dumps({"renames": [{"target": "dense.pte", "temp": "precious.txt", "backup": None}]}))
    OutputSet(tmp_path, NAMES).prepare()
    assert _listing(tmp_path) == before | running | {"precious.txt": b"mine"}


def test_export_checks_every_output_before_compressing(tmp_path):
    before = _old_set(tmp_path)
    (tmp_path / "lutham.pte").unlink()
    (tmp_path / "lutham.pte").mkdir()
    stages = []
    with pytest.raises(ValueError, match=r"lutham\.pte exists and is not a regular file"):
        export(_opts(tmp_path), lambda s, f: stages.append(s))
    assert stages == []  # failed before building or compressing anything
    assert (tmp_path / "dense.pte").read_bytes() == before["dense.pte"]


def test_export_write_failure_keeps_the_old_set_and_removes_stale_temps(tmp_path):
    before = _old_set(tmp_path)
    dead, live = _dead_pid(), os.getppid()
    stale = tmp_path / f".dense.pte.{dead}.0badc0de.tmp"  # left by a SIGKILLed export
    running = tmp_path / f".lutham.pte.{live}.0badc0de.tmp"  # another export, still running
    stranger = tmp_path / ".notes.txt.tmp"  # not ours
    for p in (stale, running, stranger):
        p.write_bytes(b"x")
    # The disk "fills up" once the work is done, while the ~30 KB dense.pte is written.
    limit = _FileSizeLimit(8_000)

    def progress(stage, fraction):
        if stage == "done":
            limit.__enter__()

    try:
        with pytest.raises(ValueError, match=r"cannot write .*dense\.pte: File too large"):
            export(_opts(tmp_path), progress)
    finally:
        limit.__exit__()
    after = _listing(tmp_path)
    assert {n: after[n] for n in NAMES} == {n: before[n] for n in NAMES}
    assert sorted(after) == sorted([*NAMES, running.name, stranger.name])


# ------------------------------------------------------------------ checkpoints (9.3, 9.4)


def _config(**kw) -> ModelConfig:
    return ModelConfig(**({"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4} | kw))


def test_partial_checkpoint_is_refused_unless_allowed(tmp_path):
    trained = build_model(_config(seed=7))
    head0 = {k: v for k, v in trained.state_dict().items() if k.startswith("heads.0.")}
    torch.save(head0, tmp_path / "head0.pt")
    with pytest.raises(ValueError, match=r"lacks 4 of the model's 8 tensors \(heads\.1\.layers\.0\.base_weight, .*\); pass --allow-partial"):
        build_model(_config(weights=str(tmp_path / "head0.pt")))
    one = {"heads.0.layers.0.base_weight": trained.state_dict()["heads.0.layers.0.base_weight"]}
    torch.save(one, tmp_path / "one.pt")
    with pytest.raises(ValueError, match=r"lacks 7 of the model's 8 tensors"):
        build_model(_config(weights=str(tmp_path / "one.pt")))
    # --allow-partial: head 0 from the checkpoint, head 1 the seeded init.
    model = build_model(_config(weights=str(tmp_path / "head0.pt"), allow_partial=True)).state_dict()
    init = build_model(_config()).state_dict()
    for k, v in model.items():
        assert torch.equal(v, head0[k] if k in head0 else init[k]), k
    assert not torch.equal(model["heads.0.layers.0.spline_weight"], init["heads.0.layers.0.spline_weight"])


def test_unreadable_checkpoints_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.save([1, 2, 3], tmp_path / "list.pt")
    for name, msg in [("empty.pt", r"is empty \(0 bytes\), not a PyTorch checkpoint"),
                      ("random.pt", r"is not a readable PyTorch checkpoint"),
                      ("list.pt", r"holds a list, not a state dict")]:
        with pytest.raises(ValueError, match=rf"--weights .*{name} {msg}") as info:
            build_model(_config(weights=str(tmp_path / name)))
        assert "\n" not in str(info.value)


def test_non_finite_weights_are_refused_before_compressing(tmp_path):
    state = build_model(_config()).state_dict()
    state["heads.1.layers.0.spline_scaler"][0, 0] = float("nan")
    state["heads.1.layers.0.spline_scaler"][1, 0] = float("inf")
    torch.save(state, tmp_path / "nan.pt")
    before = _old_set(tmp_path / "out")
    stages = []
    with pytest.raises(ValueError, match=r"heads\.1\.layers\.0\.spline_scaler has 2 non-finite value\(s\) \(NaN or Inf\) of 64"):
        export(_opts(tmp_path / "out", weights=str(tmp_path / "nan.pt")), lambda s, f: stages.append(s))
    assert "export dense.pte" not in stages and not any("compress" in s for s in stages)
    assert _listing(tmp_path / "out") == before


# ------------------------------------------------------------------ flags (9.10)


def test_fp32_with_bit_widths_and_models_too_big_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--gain-bits cannot be used with --fp32"):
        export(_opts(tmp_path, int8=False, gain_bits=3))
    # 2048*512 + 512*25 edges of 12 coefficients + scaler + base, grids of 16 points per input.
    dense_gb = 4 * (2048 * 512 * 14 + 512 * 25 * 14 + (2048 + 512) * 16) * 10**6 / 1e9
    with pytest.raises(ValueError, match=rf"1000000 head\(s\) of widths 2048,512,25 are {dense_gb:,.1f} GB of float32 weights; "
                                         rf"exporting them needs about {dense_gb * 3.5:,.1f} GB of memory"):
        export(_opts(tmp_path, heads=10**6, widths=None, grid=9))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ run (9.4, 9.6, 9.10)

needs_backend = pytest.mark.skipif(not runtime.library_path().is_file(), reason="build/delegate not built (scripts/build-delegate.sh)")


@pytest.fixture(scope="module")
def lutham_pte(tmp_path_factory):
    config, _dense, compressed, _ = small_pair()
    path = tmp_path_factory.mktemp("hardening") / "lutham.pte"
    path.write_bytes(export_bytes(compressed, config, delegate=True))
    return path, config


def test_run_refuses_non_pte_files_before_executorch(tmp_path, lutham_pte):
    path, _ = lutham_pte
    (tmp_path / "random.pte").write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    flipped = bytearray(path.read_bytes())
    flipped[6] ^= 0x01  # "ET12" -> "ET02"
    (tmp_path / "flipped.pte").write_bytes(bytes(flipped))
    for name, msg in [("random.pte", "is not a .pte file"), ("flipped.pte", r"identifier b'ET02'"), ("missing.pte", "no such file")]:
        with pytest.raises(runtime.RunError, match=msg):
            runtime.run_file(tmp_path / name)
    with pytest.raises(runtime.RunError, match="not a regular file"):
        runtime.run_file(tmp_path)


@needs_backend
def test_run_keeps_executorch_log_off_stderr_and_reports_it_in_the_error(tmp_path, lutham_pte, capfd):
    path, _ = lutham_pte
    data = bytearray(path.read_bytes())
    at = data.find(b"LTHM")  # the first LuthamBackend payload's identifier
    data[at:at + 4] = b"XXXX"
    (tmp_path / "bad-payload.pte").write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(runtime.RunError, match=r"cannot load .*bad-payload\.pte: .*\(.+\)$"):
        runtime.run_file(tmp_path / "bad-payload.pte", repeat=1)
    info = runtime.run_file(path, repeat=1)
    assert info["non_finite_outputs"] == 0
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@needs_backend
def test_run_reports_non_finite_inputs_and_writes_output_exactly_there(tmp_path, lutham_pte):
    path, config = lutham_pte
    x = config.example_input().numpy().copy()
    x[0, :3] = [np.nan, np.inf, -np.inf]
    np.save(tmp_path / "x.npy", x)
    info = runtime.run_file(path, [str(tmp_path / "x.npy")], str(tmp_path / "y.out"), repeat=1)
    assert info["non_finite_inputs"] == [3] and info["non_finite_outputs"] > 0
    assert np.isnan(info["sum"])
    assert (tmp_path / "y.out").is_file() and not (tmp_path / "y.out.npy").exists()
    assert np.load(tmp_path / "y.out").shape == tuple(info["outputs"][0])


# The CLI's Python child, launched by a stand-in parent. The child installs the lifeline, tells
# the parent it is ready and then raises `error` in a __del__ (pythonia's Proxy.__del__ raises
# SystemExit when its write to a dead CLI fails). The parent exits `parent_delay` seconds after
# "ready" (or never, when None). Without the brief wait in the hooks, the kernel's order (the
# parent's socket closes before the child is reparented) made the SIGKILL test print a traceback.
_LIFELINE_PARENT = r"""
import os, subprocess, sys, time
child_src, stderr_path, pid_path, delay = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
env = dict(os.environ, LUTHAM_PARENT_PID=str(os.getpid()))
with open(stderr_path, "w") as err:
    child = subprocess.Popen([sys.executable, "-c", child_src], env=env, stdout=subprocess.PIPE, stderr=err)
open(pid_path, "w").write(str(child.pid))
assert child.stdout.readline() == b"ready\n"
if delay == "None":
    sys.exit(child.wait())
time.sleep(float(delay))
os._exit(0)
"""

_LIFELINE_CHILD = r"""
import sys, time
from lutham import lifeline
lifeline.install()
class Proxy:
    def __del__(self):
        raise {error}("the bridge to the CLI is gone")
p = Proxy()
print("ready", flush=True)
del p
time.sleep(0.2)
print("still running", file=sys.stderr, flush=True)
"""


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("error,parent_delay,expect", [
    # The parent dies 0.3 s after the failed write: quiet exit, no traceback, no further work.
    ("SystemExit", 0.3, None),
    ("BrokenPipeError", 0.3, None),
    # A parent that stays: the error is real and is reported after the wait, the child runs on.
    ("SystemExit", None, "Exception ignored"),
    # An unrelated error is reported at once even if the parent dies soon after.
    ("ValueError", 0.3, "ValueError: the bridge to the CLI is gone"),
])
def test_lifeline_hides_errors_from_a_dying_parents_bridge_only(tmp_path, error, parent_delay, expect):
    stderr_path, pid_path = tmp_path / "child.err", tmp_path / "child.pid"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", _LIFELINE_PARENT, _LIFELINE_CHILD.format(error=error),
                    str(stderr_path), str(pid_path), str(parent_delay)], env=env, timeout=60, check=True)
    child = int(pid_path.read_text())
    for _ in range(100):
        if _pid_gone(child):
            break
        subprocess.run(["sleep", "0.1"])
    assert _pid_gone(child), "the child outlived its parent"
    stderr = stderr_path.read_text()
    if expect is None:
        assert stderr == ""
    else:
        assert expect in stderr
        if parent_delay is None:
            assert "still running" in stderr
