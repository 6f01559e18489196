"""What `lutham bench` measures about the machine: its CPU, its last-level cache, its read
bandwidth (build/delegate/lutham_membw, the C++ multi-threaded read-only loop) and the cache
eviction before a cold run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

from ..run.runtime import library_path

# VMs cache far more than the L3 sysfs reports (measured: 32 MB said, hundreds of MB cached),
# so the buffers have floors: the bandwidth loop reads >= 1 GiB, eviction writes >= 512 MiB.
BANDWIDTH_FLOOR_MIB = 1024
EVICT_FLOOR_MIB = 512


def llc_bytes() -> int:
    """The largest cache of cpu0 that sysfs reports (as delegate/bench/llc.h); 0 if none."""
    best = 0
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:].upper(), 1)
        digits = text.rstrip("KkMm")
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best


def default_evict_mib() -> int:
    return max(EVICT_FLOOR_MIB, -(-2 * llc_bytes() // (1024 * 1024)))


def cpu() -> dict:
    """Model name and flags from /proc/cpuinfo (the flags say which kernel variants can run)."""
    model, flags = "", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
    except OSError:
        pass
    return {"cpu": model or os.uname().machine, "flags": flags, "cores": os.cpu_count(), "llc_bytes": llc_bytes(),
            "load_average_1min": os.getloadavg()[0]}


def membw_path() -> Path:
    """lutham_membw next to the backend library (build/delegate, or LUTHAM_BACKEND_LIB's folder)."""
    return library_path().parent / "lutham_membw"


def read_bandwidth(mib: int | None = None, rounds: int = 7) -> dict:
    """The best round of lutham_membw: threads as the kernel's (hardware threads capped by
    LUTHAM_THREADS), each reading its slice of one buffer of >= 4x the LLC and >= 1 GiB."""
    tool = membw_path()
    if not tool.is_file():
        raise FileNotFoundError(f"{tool} does not exist: build the delegate with scripts/build-delegate.sh")
    buffer_mib = mib if mib is not None else max(BANDWIDTH_FLOOR_MIB, -(-4 * llc_bytes() // (1024 * 1024)))
    proc = subprocess.run([str(tool), "--json", "--mib", str(buffer_mib), "--rounds", str(rounds)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"bytes_per_second": out["best_bytes_per_second"], "median_bytes_per_second": out["median_bytes_per_second"],
            "threads": out["threads"], "buffer_bytes": int(out["buffer_bytes"]), "rounds": out["rounds"],
            "method": f"{tool.name}: {out['threads']} threads read one buffer, read-only, best of {out['rounds']} rounds"}


class Evictor:
    """Writes a buffer of `mib` MiB end to end: afterwards no earlier data is left in the caches."""

    def __init__(self, mib: int):
        self.buffer = np.zeros(mib * 1024 * 1024 // 8, dtype=np.int64)  # faulted in by the first evict
        self.round = 0

    def evict(self) -> None:
        self.round += 1
        self.buffer.fill(self.round)
