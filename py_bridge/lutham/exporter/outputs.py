"""A set of output files that appear together or not at all (dense.pte, lutham.pte, report.json).

Each file alone is atomic (temp file + rename), but a set written one file at a time is not:
a failure after the first rename leaves a new dense.pte beside an old lutham.pte. So the set
writes every file to a temp file first (fsynced; `add` takes bytes, `write` streams a large file
straight into its temp, e.g. a 3 GB dense.pte never held in memory), and only then swaps them
in as one commit:

1. each old file gets a hard link `.<name>.<pid>.<token>.old` (its backup, no copy);
2. a journal `.lutham-commit.<pid>.<token>.json` names the renames; it is fsynced before any;
3. the temps are renamed over the targets, with SIGINT/SIGTERM/SIGHUP held back, and the old
   files the new set no longer has (`remove`: e.g. the lutham.ptd of an earlier --external-data
   export, which the new lutham.pte does not read) are unlinked;
4. the journal and the backups are removed.

A rename that fails puts the old files back from their backups. A process killed during step 3
(SIGKILL, power loss) leaves its journal: the next export into that directory finishes the
renames (every temp was complete before the journal existed), so the set is the new one whole.
A journal that cannot be parsed was never finished, so no rename had started: it is dropped.

One export at a time per directory: prepare() takes an exclusive flock on the directory itself
(no lock file is left in --out) and commit() lets it go, so two exports can never interleave their
renames; a second one fails at once with one line. A failed export lets go too
(`releases_directory_on_failure`), and a killed one by dying.

Temp and backup files are named `.<name>.<pid>.<token>.tmp|.old`; one whose pid is no longer
running was left by a killed export and is removed by the next export into that directory.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import secrets
import shutil
import signal
import threading
import weakref
from pathlib import Path

from ..files import file_mode, write_synced

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.(?P<kind>tmp|old)$")
_JOURNAL_NAME = re.compile(r"^\.lutham-commit\.(?P<pid>\d+)\.[0-9a-f]+\.json$")
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

# Temp files this process has open right now: lifeline.py removes them when the CLI dies.
_live: set[Path] = set()
_live_lock = threading.RLock()  # re-entrant: a signal handler may run while the main thread holds it

# Temp folders this process works in (lutham bench's): removed with the temp files when the CLI dies.
_live_dirs: set[Path] = set()


def track_temporary_directory(path: str | os.PathLike, tracked: bool = True) -> None:
    """Adds (or, tracked=False, drops) a folder that discard_temporaries removes on SIGINT/SIGTERM."""
    with _live_lock:
        (_live_dirs.add if tracked else _live_dirs.discard)(Path(path))


# Held by the thread swapping a set in; discard_temporaries (another thread, at exit) waits for it.
_commit_lock = threading.Lock()
_committing_thread: int | None = None
_after_commit: list = []  # what signal handlers deferred until the renames end (the lifeline's exit)


_held = threading.local()  # weak refs to the OutputSets this thread prepared and has not committed yet


def _held_sets() -> list:
    return _held.__dict__.setdefault("sets", [])


def releases_directory_on_failure(fn):
    """Wraps an export: an OutputSet it prepared but did not commit (it raised) lets go of its
    directory, so a later export into it (in this process or another) is not refused."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = list(_held_sets())
        try:
            return fn(*args, **kwargs)
        except BaseException:
            for ref in list(_held_sets()):
                output_set = ref()
                if output_set is not None and all(ref is not b for b in before):
                    output_set.release()
            raise

    return wrapper


def committing_in_this_thread() -> bool:
    """True inside a commit's renames, e.g. in a signal handler that interrupted them."""
    return _committing_thread == threading.get_ident()


def defer_until_committed(action) -> bool:
    """From a signal handler inside a commit's renames: runs `action` once they end; else False."""
    if not committing_in_this_thread():
        return False
    _after_commit.append(action)
    return True


def _run_deferred() -> None:
    pending = list(_after_commit)
    _after_commit.clear()
    for action in pending:
        action()


def discard_temporaries() -> None:
    """Removes every temp file this process is writing (safe from a signal handler or thread).

    A commit in another thread is waited for (its renames take moments), so the set is whole.
    Called from inside a commit (a signal handler), it leaves everything: the commit finishes.
    """
    if committing_in_this_thread():
        return
    with _commit_lock:
        with _live_lock:
            paths = list(_live)
            _live.clear()
            dirs = list(_live_dirs)
            _live_dirs.clear()
        for p in paths:
            try:
                os.unlink(p)
            except OSError:
                pass
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _journal_plan(directory: Path, journal_pid: int, text: str, names) -> list[tuple[Path | None, Path, Path | None]] | None:
    """The (temp, target, backup) renames of a journal (temp None: the target is removed), or
    None unless every entry is one of ours."""
    try:
        entries = json.loads(text)["renames"]
        plan = []
        for e in entries:
            target, temp, backup = e["target"], e["temp"], e["backup"]
            if target not in names or (temp is None and backup is None):
                return None
            for name, kind in ((temp, "tmp"), (backup, "old")):
                if name is None:
                    continue
                m = _TEMP_NAME.match(name)
                if not m or m["name"] != target or m["kind"] != kind or int(m["pid"]) != journal_pid:
                    return None
            plan.append((None if temp is None else directory / temp, directory / target,
                         None if backup is None else directory / backup))
        return plan
    except (ValueError, KeyError, TypeError):
        return None


def recover_interrupted_commits(directory: Path, names) -> list[Path]:
    """Finishes the commits of killed processes (their journals); returns the journals handled."""
    handled = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return handled
    for e in entries:
        m = _JOURNAL_NAME.match(e.name)
        if not m:
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and _pid_running(pid):
            continue  # a running export is committing right now
        try:
            text = Path(e.path).read_text()
        except (OSError, UnicodeDecodeError):
            text = ""
        plan = _journal_plan(directory, pid, text, names)
        if plan:
            try:
                for temp, target, _ in plan:
                    if temp is None:  # a file the new set does not have
                        if target.exists():
                            os.unlink(target)
                    elif temp.exists():
                        os.replace(temp, target)
            except OSError:
                continue  # leave the journal for a later try; the stale-temp sweep must not run on it
            _fsync_directory(directory)
            for _, _, backup in plan:
                if backup is not None:
                    _unlink_quietly(backup)
        _unlink_quietly(Path(e.path))
        handled.append(Path(e.path))
    return handled


def remove_stale_temporaries(directory: Path, names) -> list[Path]:
    """Removes `.<name>.<pid>.<token>.tmp|.old` files of `names` whose process is gone; returns them.

    Files of a process whose journal is still there are kept: that commit is not finished.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    journaled = {int(m["pid"]) for e in entries if (m := _JOURNAL_NAME.match(e.name))}
    for e in entries:
        m = _TEMP_NAME.match(e.name)
        if not m or m["name"] not in names:
            continue
        pid = int(m["pid"])
        if pid in journaled:
            continue
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

    def __init__(self, directory: str | os.PathLike, names, remove=()) -> None:
        """names: the files of the set; remove: files an earlier set may have left that this one
        has not, unlinked by the same commit (e.g. lutham.ptd when the new export has none)."""
        self.directory = Path(directory)
        self.names = tuple(names)
        self.removed = tuple(n for n in remove if n not in self.names)
        self._data: dict[str, bytes] = {}
        self._written: dict[str, tuple[Path, int]] = {}  # name -> (its complete temp file, bytes)
        self._unlock = None  # closes the locked directory's descriptor, once (also when garbage-collected)

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
        self._lock_directory()
        try:
            self._check_targets()
            recover_interrupted_commits(d, self.names + self.removed)
            remove_stale_temporaries(d, self.names + self.removed)
        except BaseException:
            self.release()
            raise

    def _lock_directory(self) -> None:
        if self._unlock is not None:
            return
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(f"--out {self.directory} is being written by another lutham export right now; "
                             "wait for it to finish or choose another --out") from None
        self._unlock = weakref.finalize(self, os.close, fd)  # closing the only descriptor ends the flock
        sets = _held_sets()
        sets[:] = [r for r in sets if r() is not None] + [weakref.ref(self)]

    def release(self) -> None:
        """Lets go of the directory (commit() does it; an export that fails calls it) and removes
        the temps `write` left that were never swapped in."""
        written, self._written = self._written, {}
        for tmp, _ in written.values():
            with _live_lock:
                _live.discard(tmp)
            _unlink_quietly(tmp)
        unlock, self._unlock = self._unlock, None
        sets = _held_sets()
        sets[:] = [r for r in sets if r() is not None and r() is not self]
        if unlock is not None:
            unlock()

    def _check_targets(self) -> None:
        for name in self.names + self.removed:
            p = self.path(name)
            if p.is_symlink() or (p.exists() and not p.is_file()):
                raise ValueError(f"--out: {p} exists and is not a regular file; remove it or choose another --out")

    def add(self, name: str, data: bytes) -> None:
        if name not in self.names:
            raise KeyError(name)
        self._data[name] = data

    def write(self, name: str, writer) -> int:
        """Streams a file into its temp now: `writer(f)` writes to the open binary file f (e.g. an
        ExecutorchProgramManager's write_to_file). The temp is fsynced and swapped in by commit()
        with the others; returns its size in bytes."""
        if name not in self.names:
            raise KeyError(name)
        self._data.pop(name, None)
        old = self._written.pop(name, None)
        if old is not None:
            with _live_lock:
                _live.discard(old[0])
            _unlink_quietly(old[0])
        tmp = self._new_temp(name)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode()), "wb") as f:
                writer(f)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
        except BaseException as e:
            with _live_lock:
                _live.discard(tmp)
            _unlink_quietly(tmp)
            if isinstance(e, OSError):
                raise ValueError(f"cannot write {self.path(name)}: {e.strerror or e}") from None
            raise
        self._written[name] = (tmp, size)
        return size

    def written_path(self, name: str) -> Path:
        """The temp file `write` filled for `name` (to read it back before the commit)."""
        return self._written[name][0]

    def commit(self) -> dict[str, int]:
        """Writes every file to a temp file, then swaps them all in; returns bytes per name."""
        global _committing_thread
        missing = [n for n in self.names if n not in self._data and n not in self._written]
        if missing:
            raise RuntimeError(f"output set incomplete: {missing}")
        self._check_targets()  # again: minutes may have passed since prepare()
        sizes = {n: self._written[n][1] if n in self._written else len(self._data[n]) for n in self.names}
        temps: dict[str, Path] = {n: tmp for n, (tmp, _) in self._written.items()}
        try:
            for name in self.names:
                if name not in temps:
                    temps[name] = self._write_temp(name, self._data[name])
            try:
                with _commit_lock:
                    _committing_thread = threading.get_ident()
                    try:
                        self._swap_in(temps)
                    finally:
                        _committing_thread = None
            finally:
                _run_deferred()  # e.g. the exit a SIGTERM asked for during the renames
        finally:
            with _live_lock:
                for t in temps.values():
                    _live.discard(t)
            for t in temps.values():
                try:
                    os.unlink(t)
                except FileNotFoundError:
                    pass
            self.release()
        self._data.clear()
        return sizes

    def _new_temp(self, name: str) -> Path:
        tmp = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with _live_lock:
            _live.add(tmp)
        return tmp

    def _write_temp(self, name: str, data: bytes) -> Path:
        target = self.path(name)
        tmp = self._new_temp(name)
        try:
            write_synced(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode()), data)
        except OSError as e:
            with _live_lock:
                _live.discard(tmp)
            _unlink_quietly(tmp)
            raise ValueError(f"cannot write {target}: {e.strerror or e}") from None
        return tmp

    def _backup(self, name: str) -> Path | None:
        """A hard link to the old file, or None where links are not supported."""
        target = self.path(name)
        backup = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.old"
        try:
            os.link(target, backup)
        except OSError:
            return None  # e.g. a filesystem without hard links: that file cannot be rolled back
        return backup

    def _write_journal(self, temps: dict[str, Path], backups: dict[str, Path | None], removing: list[str]) -> Path:
        journal = self.directory / f".lutham-commit.{os.getpid()}.{secrets.token_hex(4)}.json"
        text = json.dumps({"renames": [{"target": n, "temp": temps[n].name, "backup": None if backups[n] is None else backups[n].name}
                                       for n in self.names]
                           + [{"target": n, "temp": None, "backup": backups[n].name} for n in removing]})
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_synced(fd, text.encode())
        except OSError:
            _unlink_quietly(journal)
            raise
        _fsync_directory(self.directory)
        return journal

    def _swap_in(self, temps: dict[str, Path]) -> None:
        # Held signals wait until all names point at the new files (in the main thread; another
        # thread that gets one waits in discard_temporaries for this commit to end).
        main = threading.current_thread() is threading.main_thread()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS) if main else None
        backups: dict[str, Path | None] = {}
        absent = {name for name in self.names if not self.path(name).exists()}
        # Old files to remove; one that cannot get a backup (no hard links) is left in place,
        # since removing it could not be undone by a failed commit.
        removing: list[str] = []
        journal = None
        try:
            try:
                for name in self.names:
                    backups[name] = None if name in absent else self._backup(name)
                for name in self.removed:
                    if self.path(name).exists() and (backup := self._backup(name)) is not None:
                        backups[name] = backup
                        removing.append(name)
                journal = self._write_journal(temps, backups, removing)
            except OSError as e:
                raise ValueError(f"cannot write {self.directory}: {e.strerror or e}") from None
            done: list[str] = []
            try:
                for name in self.names:
                    os.replace(temps[name], self.path(name))
                    done.append(name)
                for name in removing:
                    os.unlink(self.path(name))
                    done.append(name)
            except OSError as e:
                self._roll_back(done, backups, absent)
                raise ValueError(f"cannot write {self.path(name)}: {e.strerror or e}") from None
            except BaseException:
                # Interrupted (KeyboardInterrupt): every temp is complete, so the set is finished.
                for name in self.names:
                    if name not in done:
                        os.replace(temps[name], self.path(name))
                for name in removing:
                    if name not in done:
                        _unlink_quietly(self.path(name))
                raise
            finally:
                _fsync_directory(self.directory)
        finally:
            if journal is not None:
                _unlink_quietly(journal)
            for backup in backups.values():
                if backup is not None:
                    _unlink_quietly(backup)
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _roll_back(self, done: list[str], backups: dict[str, Path | None], absent: set[str]) -> None:
        """Puts the old files back after a failed rename; a name that had no file loses the new one."""
        for name in done:
            backup = backups.get(name)
            try:
                if backup is not None:
                    os.replace(backup, self.path(name))
                    backups[name] = None
                elif name in absent:
                    os.unlink(self.path(name))
                # else: an old file without a backup (no hard links here) cannot be restored
            except OSError:
                pass  # the original error is the one to report
