"""LUTHAM against the folded int8 matmul alone and against the read bandwidth bound, warm and
cold, in one run (the ratios come from the same run, so they can be compared):

    PYTHONPATH=py_bridge python delegate/bench/compare.py [--heads 1 50] [--batch 1 32] \
        [--repeat 30] [--warmup 3] [--evict-mib 512] [--dir build/bench] [--json]

Programs come from delegate/bench/matmul_baseline.py (made once into --dir, each in its own
process), times from build/delegate/lutham_runner --fresh-inputs (a new input every run, so
LuthamBackend cannot reuse the last run's bases; --cold: caches evicted before every run;
"LUTHAM" is the time inside LuthamBackend::execute, "method" the whole program), the bound
from build/delegate/lutham_membw (multi-threaded read-only loop over >= 1 GiB, best round):
bound = bytes read per inference / read bandwidth. LUTHAM reads its payloads and codebooks,
the matmul its int8 weights and scales (its features are given: basis for free).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LUTHAM_BUILD_DIR", ROOT / "build" / "delegate"))


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def program(what: str, heads: int, batch: int, out_dir: Path) -> dict:
    path = out_dir / f"{what}-h{heads}-b{batch}.pte"
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        log(f"exporting {path.name}")
        env = dict(os.environ, PYTHONPATH=str(ROOT / "py_bridge"))
        r = subprocess.run([sys.executable, str(ROOT / "delegate" / "bench" / "matmul_baseline.py"), what, str(path),
                            "--heads", str(heads), "--batch", str(batch)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"compare: exporting {path.name} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        meta.write_text(r.stdout.strip().splitlines()[-1])
    info = json.loads(meta.read_text())
    info["path"] = str(path)
    return info


def run(pte: str, cold: bool, repeat: int, warmup: int, evict_mib: int) -> dict:
    cmd = [str(BUILD / "lutham_runner"), "--model", pte, "--repeat", str(repeat), "--warmup", str(warmup), "--json",
           "--fresh-inputs"]
    if cold:
        cmd += ["--cold", "--evict-mib", str(evict_mib)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"compare: {' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def bandwidth() -> dict:
    r = subprocess.run([str(BUILD / "lutham_membw"), "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heads", type=int, nargs="+", default=[1, 50])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--evict-mib", type=int, default=512)
    p.add_argument("--modes", nargs="+", default=["warm", "cold"], choices=["warm", "cold"])
    p.add_argument("--dir", default=str(ROOT / "build" / "bench"))
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    out_dir = Path(a.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    log("read bandwidth (lutham_membw)")
    bw = bandwidth()
    rate = bw["best_bytes_per_second"]
    for heads in a.heads:
        for batch in a.batch:
            progs = {w: program(w, heads, batch, out_dir) for w in ("lutham", "matmul")}
            for mode in a.modes:
                log(f"{heads} head(s), batch {batch}, {mode}")
                lut = run(progs["lutham"]["path"], mode == "cold", a.repeat, a.warmup, a.evict_mib)
                mm = run(progs["matmul"]["path"], mode == "cold", a.repeat, a.warmup, a.evict_mib)
                bound = progs["lutham"]["weight_bytes"] / rate * 1e3
                rows.append(dict(heads=heads, batch=batch, mode=mode, lutham_ms=lut["backend_median_ms"],
                                 lutham_method_ms=lut["median_ms"], matmul_ms=mm["median_ms"],
                                 lutham_bytes=progs["lutham"]["weight_bytes"], matmul_bytes=progs["matmul"]["weight_bytes"],
                                 bound_ms=bound, matmul_bound_ms=progs["matmul"]["weight_bytes"] / rate * 1e3,
                                 x_bound=lut["backend_median_ms"] / bound,
                                 matmul_over_lutham=mm["median_ms"] / lut["backend_median_ms"], isa=lut.get("kernel_isa")))
    result = {"bandwidth": bw, "repeat": a.repeat, "warmup": a.warmup, "evict_mib": a.evict_mib, "rows": rows,
              "load_average_1min": os.getloadavg()[0], "lutham_isa": rows[0]["isa"] if rows else None}
    if a.json:
        print(json.dumps(result))
        return 0
    print(f"read bandwidth {rate / 1e9:.2f} GB/s (best of {bw['rounds']}, {bw['threads']} threads, "
          f"{bw['buffer_bytes'] / 2**20:.0f} MiB); medians of {a.repeat} runs after {a.warmup}; cold = "
          f"{a.evict_mib} MiB written before each run; kernel {result['lutham_isa']}; load average {result['load_average_1min']:.2f}")
    print("| heads | batch | mode | LUTHAM (backend) | LUTHAM method | int8 matmul alone | LUTHAM bound | LUTHAM / bound | matmul / LUTHAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['heads']} | {r['batch']} | {r['mode']} | {r['lutham_ms']:.3f} ms | {r['lutham_method_ms']:.3f} ms | "
              f"{r['matmul_ms']:.3f} ms | {r['bound_ms']:.3f} ms ({r['lutham_bytes'] / 1e6:.1f} MB) | "
              f"{r['x_bound']:.2f}x | {r['matmul_over_lutham']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
