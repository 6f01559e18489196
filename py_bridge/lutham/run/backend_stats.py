"""LuthamBackend's own counters, read through ctypes from liblutham_backend.so.

`lutham_execute_stats(uint64_t out[2])` = {execute calls, nanoseconds spent inside
LuthamBackend::execute since load}. Older builds of the backend lack it: then every reader
here returns None and callers report the split as unavailable.
"""

from __future__ import annotations

import ctypes


class ExecuteClock:
    """Time inside LuthamBackend::execute between two reads (the KAN heads of a lutham.pte)."""

    def __init__(self):
        from .runtime import load_backend

        lib = load_backend()
        self._fn = getattr(lib, "lutham_execute_stats", None) if hasattr(lib, "lutham_execute_stats") else None
        self._buf = (ctypes.c_uint64 * 2)()

    @property
    def available(self) -> bool:
        return self._fn is not None

    def read(self) -> tuple[int, int] | None:
        """(execute calls, nanoseconds) since the backend was loaded, or None without the counters."""
        if self._fn is None:
            return None
        self._fn(self._buf)
        return int(self._buf[0]), int(self._buf[1])
