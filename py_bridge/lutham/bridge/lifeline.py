"""The Python child dies with the CLI that started it, leaving no temp files behind.

Installed by bridge_entry (the CLI's child only):
- SIGINT is ignored: a Ctrl-C on the terminal reaches the whole process group, and the CLI
  decides what happens (it sends SIGTERM, then SIGKILL);
- SIGTERM/SIGHUP remove this process's temp files (outputs.py) and exit at once, except during
  an output set's renames, which finish first (moments) so the set is whole;
- PR_SET_PDEATHSIG turns the parent's death (even SIGKILL) into SIGTERM here;
- a watchdog thread notices those signals while the main thread is busy in C code (through
  the signal wakeup fd) and a changed parent pid (if PDEATHSIG is unavailable);
- once the parent is gone, pythonia's failing writes to it must not print tracebacks on the
  user's terminal: the error hooks exit quietly instead. The kernel closes a dying parent's
  socket before it reparents this process, so a broken bridge (pythonia raises SystemExit, or a
  broken pipe) can show up a moment before getppid() changes: for those the hooks wait briefly.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time

from ..exporter.outputs import defer_until_committed, discard_temporaries

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.5
# How long an error that looks like a broken bridge waits for the parent's death to show.
_BROKEN_BRIDGE_WAIT_SECONDS = 2.0
_BROKEN_BRIDGE = (SystemExit, BrokenPipeError, ConnectionError)
_exiting = threading.Lock()
_exiting_thread: int | None = None


def _die(code: int) -> None:
    global _exiting_thread
    if defer_until_committed(lambda: _die(code)):
        return  # a handler interrupted an output set's renames: exit once the set is whole
    if not _exiting.acquire(blocking=False):
        if _exiting_thread == threading.get_ident():
            return  # a signal handler re-entered: the interrupted call below it exits
        while True:  # another thread is exiting: wait for it rather than print or run on
            time.sleep(60)
    _exiting_thread = threading.get_ident()
    discard_temporaries()
    os._exit(code)


def _orphaned(parent: int, exc_type) -> bool:
    if not parent:
        return False
    broken = isinstance(exc_type, type) and issubclass(exc_type, _BROKEN_BRIDGE)
    deadline = time.monotonic() + (_BROKEN_BRIDGE_WAIT_SECONDS if broken else 0.0)
    while os.getppid() == parent:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _quiet_when_orphaned(default_hook, parent: int):
    """Wraps sys.excepthook (args: type, value, tb) or sys.unraisablehook (args: one record)."""

    def hook(*args):
        exc_type = args[0] if len(args) == 3 else getattr(args[0], "exc_type", None)
        if _orphaned(parent, exc_type):
            _die(1)
        default_hook(*args)

    return hook


def _on_signal(signum, _frame) -> None:
    _die(128 + signum)


def _watch(read_fd: int, parent: int) -> None:
    while True:
        ready, _, _ = select.select([read_fd], [], [], _POLL_SECONDS)
        if ready:
            for b in os.read(read_fd, 64):
                if b in (signal.SIGTERM, signal.SIGHUP):
                    _die(128 + b)
        if parent and os.getppid() != parent:
            _die(1)


def install() -> None:
    """Call once, from the main thread, in the CLI's Python child."""
    parent = int(os.environ.get("LUTHAM_PARENT_PID") or 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent-pid watchdog below still works
    if parent and os.getppid() != parent:
        _die(1)  # the CLI died before PDEATHSIG was set
    sys.unraisablehook = _quiet_when_orphaned(sys.unraisablehook, parent)
    sys.excepthook = _quiet_when_orphaned(sys.excepthook, parent)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_fd, parent), name="lutham-lifeline", daemon=True).start()
