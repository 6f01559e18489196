"""LuthamBackend's own counters, read through ctypes from liblutham_backend.so.

`lutham_execute_stats(uint64_t out[2])` = {execute calls, nanoseconds spent inside
LuthamBackend::execute since load}.
"""

from __future__ import annotations

import ctypes


class ExecuteClock:
    """Time inside LuthamBackend::execute between two reads (the KAN heads of a lutham.pte)."""

    def __init__(self):
        from .runtime import load_backend

        self._fn = load_backend().lutham_execute_stats
        self._buf = (ctypes.c_uint64 * 2)()

    def read(self) -> tuple[int, int]:
        """(execute calls, nanoseconds) since the backend was loaded."""
        self._fn(self._buf)
        return int(self._buf[0]), int(self._buf[1])
