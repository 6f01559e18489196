"""A set of output files that appear together or not at all (dense.pte, lutham.pte, report.json).

Each file alone is atomic (temp file + rename), but a set written one file at a time is not:
a failure after the first rename leaves a new dense.pte beside an old lutham.pte. So the set
collects every file's bytes first, writes them all to temp files, and renames them into place
only after all writes succeeded, with SIGINT/SIGTERM/SIGHUP held back during the renames.

Temp files are named `.<name>.<pid>.<token>.tmp`; one whose pid is no longer running was left
by a killed export and is removed by the next export into that directory.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
from pathlib import Path

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

# Temp files this process has open right now: lifeline.py removes them when the CLI dies.
_live: set[Path] = set()
_live_lock = threading.RLock()  # re-entrant: a signal handler may run while the main thread holds it


def discard_temporaries() -> None:
    """Removes every temp file this process is writing (safe from a signal handler or thread)."""
    with _live_lock:
        paths = list(_live)
        _live.clear()
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: Path, names) -> list[Path]:
    """Removes `.<name>.<pid>.<token>.tmp` files of `names` whose process is gone; returns them."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_NAME.match(e.name)
        if not m or m["name"] not in names:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or not _pid_running(pid):
            with _live_lock:
                if Path(e.path) in _live:
                    continue
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


class OutputSet:
    """Files of one run: `prepare()` before the work, `add()` each result, `commit()` at the end."""

    def __init__(self, directory: str | os.PathLike, names) -> None:
        self.directory = Path(directory)
        self.names = tuple(names)
        self._data: dict[str, bytes] = {}

    def path(self, name: str) -> Path:
        return self.directory / name

    def prepare(self) -> None:
        """Fails now, before minutes of work, if any output cannot be written; removes stale temps."""
        d = self.directory
        if d.exists() and not d.is_dir():
            raise ValueError(f"--out {d} exists and is not a directory")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"--out {d}: cannot create it ({e.strerror})") from None
        if not os.access(d, os.W_OK | os.X_OK):
            raise ValueError(f"--out {d} is not writable")
        self._check_targets()
        remove_stale_temporaries(d, self.names)

    def _check_targets(self) -> None:
        for name in self.names:
            p = self.path(name)
            if p.is_symlink() or (p.exists() and not p.is_file()):
                raise ValueError(f"--out: {p} exists and is not a regular file; remove it or choose another --out")

    def add(self, name: str, data: bytes) -> None:
        if name not in self.names:
            raise KeyError(name)
        self._data[name] = data

    def commit(self) -> dict[str, int]:
        """Writes every file to a temp file, then renames them all; returns bytes per name."""
        missing = [n for n in self.names if n not in self._data]
        if missing:
            raise RuntimeError(f"output set incomplete: {missing}")
        self._check_targets()  # again: minutes may have passed since prepare()
        temps: dict[str, Path] = {}
        try:
            for name in self.names:
                temps[name] = self._write_temp(name, self._data[name])
            self._rename_all(temps)
        finally:
            with _live_lock:
                for t in temps.values():
                    _live.discard(t)
            for t in temps.values():
                try:
                    os.unlink(t)
                except FileNotFoundError:
                    pass
        sizes = {n: len(self._data[n]) for n in self.names}
        self._data.clear()
        return sizes

    def _write_temp(self, name: str, data: bytes) -> Path:
        target = self.path(name)
        tmp = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with _live_lock:
            _live.add(tmp)
        try:
            umask = os.umask(0)
            os.umask(umask)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            with _live_lock:
                _live.discard(tmp)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise ValueError(f"cannot write {target}: {e.strerror or e}") from None
        return tmp

    def _rename_all(self, temps: dict[str, Path]) -> None:
        # Held signals wait until all names point at the new files; only SIGKILL can split the set.
        main = threading.current_thread() is threading.main_thread()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS) if main else None
        try:
            for name, tmp in temps.items():
                os.replace(tmp, self.path(name))
            try:
                dfd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass
        except OSError as e:
            raise ValueError(f"cannot write {self.path(name)}: {e.strerror or e}") from None
        finally:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
