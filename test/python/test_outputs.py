"""exporter/outputs.py: output sets (all files or none, journaled renames, stale temps, kills
during the renames) and export's use of them."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from helpers import NAMES, _listing, _old_set, _opts
from lutham.api import export
from lutham.exporter.outputs import OutputSet


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
from lutham.exporter.outputs import OutputSet
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
    setup = "from lutham.bridge import lifeline\nlifeline.install()"
    src = _KILLED_DURING_COMMIT.format(signal="SIGTERM", why="what PDEATHSIG or the CLI sends", setup=setup)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), LUTHAM_PARENT_PID=str(os.getpid()))
    child = subprocess.run([sys.executable, "-c", src, str(tmp_path)], env=env, timeout=120)
    assert child.returncode == 128 + 15
    assert _listing(tmp_path) == {n: f"new {n}".encode() for n in NAMES}


def _set_with_a_stale_ptd(directory):
    """An earlier --external-data export's files (with its lutham.ptd), and the next export's set without one."""
    before = _old_set(directory)
    (directory / "lutham.ptd").write_bytes(b"old codebooks")
    outputs = OutputSet(directory, NAMES, remove=("lutham.ptd",))
    outputs.prepare()
    for n in NAMES:
        outputs.add(n, f"new {n}".encode())
    return outputs, before | {"lutham.ptd": b"old codebooks"}


def test_output_set_commit_removes_an_old_file_the_new_set_has_not(tmp_path):
    outputs, _ = _set_with_a_stale_ptd(tmp_path)
    outputs.commit()
    assert _listing(tmp_path) == {n: f"new {n}".encode() for n in NAMES}  # lutham.ptd went with the commit


def test_output_set_failed_commit_keeps_the_old_file_it_would_remove(tmp_path, monkeypatch):
    outputs, before = _set_with_a_stale_ptd(tmp_path)
    real_unlink = os.unlink

    def unlink(path, *a, **kw):
        if os.path.basename(path) == "lutham.ptd":
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(ValueError, match="Permission denied"):
        outputs.commit()
    monkeypatch.undo()
    assert _listing(tmp_path) == before  # the three renames were rolled back, lutham.ptd kept


def test_output_set_killed_before_the_removal_is_finished_by_the_next_export(tmp_path):
    """The journal of a commit a SIGKILL cut short (its process gone) names the renames and the
    removal of the old lutham.ptd: the next export's prepare() finishes both."""
    _old_set(tmp_path)
    (tmp_path / "lutham.ptd").write_bytes(b"old codebooks")
    dead = _dead_pid()
    temps = {n: tmp_path / f".{n}.{dead}.0badc0de.tmp" for n in NAMES}
    for n, temp in temps.items():
        temp.write_bytes(f"new {n}".encode())
    backup = tmp_path / f".lutham.ptd.{dead}.0badc0de.old"
    os.link(tmp_path / "lutham.ptd", backup)
    (tmp_path / f".lutham-commit.{dead}.0badc0de.json").write_text(json.dumps(
        {"renames": [{"target": n, "temp": temps[n].name, "backup": None} for n in NAMES]
         + [{"target": "lutham.ptd", "temp": None, "backup": backup.name}]}))
    OutputSet(tmp_path, NAMES, remove=("lutham.ptd",)).prepare()
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
    # The disk "fills up" once compression is done, while the ~30 KB dense.pte streams to its temp.
    limit = _FileSizeLimit(8_000)

    def progress(stage, fraction):
        if stage == "write dense.pte":
            limit.__enter__()

    try:
        with pytest.raises(ValueError, match=r"cannot write .*dense\.pte: File too large"):
            # The int8 baseline is only measured, never written: not what this checks.
            export(_opts(tmp_path, int8_baseline=False), progress)
    finally:
        limit.__exit__()
    after = _listing(tmp_path)
    assert {n: after[n] for n in NAMES} == {n: before[n] for n in NAMES}
    assert sorted(after) == sorted([*NAMES, running.name, stranger.name])


def test_output_set_streamed_file_is_swapped_in_with_the_others(tmp_path):
    outputs = OutputSet(tmp_path, ("big.bin", "small.json"))
    outputs.prepare()
    size = outputs.write("big.bin", lambda f: [f.write(bytes([i]) * 1000) for i in range(3)])
    assert size == 3000 and outputs.written_path("big.bin").read_bytes()[:1000] == b"\0" * 1000
    assert not (tmp_path / "big.bin").exists()  # nothing is where the user looks before the commit
    outputs.add("small.json", b"{}")
    assert outputs.commit() == {"big.bin": 3000, "small.json": 2}
    assert (tmp_path / "big.bin").read_bytes() == b"".join(bytes([i]) * 1000 for i in range(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "small.json"]


def test_output_set_released_without_commit_removes_its_streamed_temp(tmp_path):
    outputs = OutputSet(tmp_path, ("big.bin",))
    outputs.prepare()

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("lowering failed")

    with pytest.raises(RuntimeError):
        outputs.write("big.bin", failing)
    outputs.write("big.bin", lambda f: f.write(b"whole"))
    outputs.release()  # what a failed export does
    assert list(tmp_path.iterdir()) == []
