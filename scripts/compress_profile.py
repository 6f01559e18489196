"""Time and memory of each export step, by the export's own progress labels (Linux: /proc).

Runs `lutham export` through the Python API and prints, at each new step, the seconds since the
start, the resident set size and the peak RSS since the previous step; it stops once the
compression stage is over (at "output error") unless --full is given.

  PYTHONPATH=py_bridge .venv/bin/python scripts/compress_profile.py --heads 50 --out /tmp/profile
"""

from __future__ import annotations

import argparse
import sys
import time


def _memory_gb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in GB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1e6
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # VmHWM starts again from VmRSS
        f.write("5")


class _Stop(Exception):
    pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="none")
    parser.add_argument("--heads", type=int, default=50)
    parser.add_argument("--codebook-size", type=int, default=128)
    parser.add_argument("--out", required=True)
    parser.add_argument("--full", action="store_true", help="run the whole export, not just up to the compression's end")
    args = parser.parse_args(argv)

    from lutham.exporter.pipeline import export

    started = time.monotonic()
    step = [None, started]
    compression = {"peak": 0.0, "start": None, "end": None}

    last_call = [started]
    build_peak = [0.0]

    def progress(label: str, fraction: float) -> None:
        name = label.split(" (")[0]
        now = time.monotonic()
        previous, last_call[0] = last_call[0], now
        if name == "build model" and step[0] == "build model":  # its second call: the model is built
            build_peak[0] = _memory_gb()[1]
            _reset_peak()  # from here on the peak is the compression's
        if name == step[0]:
            return
        rss, peak = _memory_gb()
        if name.startswith("compress ") and compression["start"] is None:
            compression["start"] = previous  # the model was built: compress_model starts
            print(f"{previous - started:7.1f} s  (build model done, its peak {build_peak[0]:.2f} GB)", flush=True)
        if name.startswith("compress ") or (step[0] or "").startswith("compress "):  # the peak since the build ended
            compression["peak"] = max(compression["peak"], peak)
            compression["end"] = now
        print(f"{now - started:7.1f} s  RSS {rss:5.2f} GB  peak of the step before {peak:5.2f} GB ({now - step[1]:5.1f} s)  -> {label}",
              flush=True)
        step[0], step[1] = name, now
        _reset_peak()
        if label == "output error" and not args.full:
            raise _Stop

    try:
        export({"backbone": args.backbone, "heads": args.heads, "codebook_size": args.codebook_size, "out": args.out}, progress)
    except _Stop:
        pass
    rss, peak = _memory_gb()
    print(f"compression stage: {compression['end'] - compression['start']:.1f} s, peak RSS {compression['peak']:.2f} GB; "
          f"{time.monotonic() - started:.1f} s in all, RSS at the end {rss:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
