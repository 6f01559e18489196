"""`lutham bench`: LUTHAM against what KAN users run today, side by side, in one process tree.

The parent builds one model (KAN heads on a flat input), writes every variant's program and
the inputs into a temp directory, measures the machine's read bandwidth, then runs each
variant in its own child process (so each peak RSS is its own) on the same inputs:

  eager         PyTorch eager, efficient-kan's forward (kan.py)
  dense         dense.pte: the efficient-kan graph on ExecuTorch's portable kernels
  folded-fp32   [silu(x), B(x)] @ W^T with W pre-folded, on XNNPACK fp32 (baselines.py)
  folded-int8   the same after PT2E dynamic int8 (XNNPACKQuantizer, per-channel)
  lutham-int    lutham.pte, default integer storage, KAN layers on LuthamBackend
  lutham-fp32   lutham.pte with float32 storage

Each child times `warmup` untimed runs, then at least `repeat` timed runs (and at least
`min_seconds`), and reports the median. Every program takes batch 1..max(batches) (dynamic
batch), so one file per variant serves every batch size. Times are ratios to lutham-int in
the same run. No number here is asserted on by tests: they only check the structure and
that every variant computes the same function.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

VARIANTS = {
    "eager": "PyTorch eager (efficient-kan)",
    "dense": "dense.pte, portable kernels",
    "folded-fp32": "folded dense, XNNPACK fp32",
    "folded-int8": "folded dense, XNNPACK dynamic int8",
    "lutham-int": "lutham.pte, LuthamBackend int",
    "lutham-fp32": "lutham.pte, LuthamBackend fp32",
}
REFERENCE = "lutham-int"
INPUT_RANGE = 1.1  # inputs uniform in [-1.1, 1.1): the grid range plus a margin on both sides

ProgressFn = Callable[[str, float], None]


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _rss_now() -> int:
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    # VmHWM belongs to this process image; getrusage's ru_maxrss would also count the
    # parent's RSS at fork, which Linux carries across exec.
    return _status_bytes("VmHWM")


def read_bandwidth(megabytes: int = 256, rounds: int = 5) -> dict:
    """Bytes read per second by a copy loop over a buffer far larger than the caches (best round)."""
    n = megabytes * 1024 * 1024 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault every page in before timing
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return {"bytes_per_second": src.nbytes / best, "buffer_bytes": int(src.nbytes), "rounds": rounds,
            "method": "numpy copy of a buffer, best of rounds; counts the bytes read (the copy also writes as many)"}


def _child_run(spec: dict) -> dict:
    """One variant in this (child) process: load it, time every batch, save its outputs."""
    variant = spec["variant"]
    if variant != "eager":
        from ..run.runtime import load_backend

        load_backend()  # the runtime's own memory is not the model's
    baseline_rss = _rss_now()
    if variant == "eager":
        from ..model.multihead import ModelConfig, build_model

        model = build_model(ModelConfig(**spec["model"]))
        model.load_state_dict(torch.load(spec["state_dict"], weights_only=True))

        def forward(x):
            with torch.no_grad():
                return model(x)
    else:
        from ..run.runtime import load_method

        program, method = load_method(spec["program"])

        def forward(x):
            return method.execute([x])[0]

    loaded_rss = _rss_now()
    results = []
    for batch, input_path in zip(spec["batches"], spec["inputs"]):
        x = torch.from_numpy(np.load(input_path))
        for _ in range(spec["warmup"]):
            y = forward(x)
        times = []
        started = time.perf_counter()
        while len(times) < spec["repeat"] or (time.perf_counter() - started < spec["min_seconds"] and len(times) < spec["max_repeat"]):
            t0 = time.perf_counter()
            y = forward(x)
            times.append((time.perf_counter() - t0) * 1e3)
        out_path = os.path.join(spec["dir"], f"out-{variant}-{batch}.npy")
        np.save(out_path, y.detach().numpy().astype(np.float32))
        results.append({"batch": batch, "median_ms": float(np.median(times)), "runs": len(times), "output": out_path})
    return {"variant": variant, "results": results, "peak_rss_bytes": _peak_rss(),
            "rss_before_load_bytes": baseline_rss, "rss_after_load_bytes": loaded_rss}


def _spawn(spec: dict, workdir: str) -> dict:
    spec_path = os.path.join(workdir, f"spec-{spec['variant']}.json")
    result_path = os.path.join(workdir, f"result-{spec['variant']}.json")
    Path(spec_path).write_text(json.dumps(spec))
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "lutham.bench.compare", "child", spec_path, result_path],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = [l for l in proc.stderr.strip().splitlines() if l.strip()][-1:] or ["no message"]
        raise RuntimeError(f"bench variant {spec['variant']} failed (exit {proc.returncode}): {last[0]}")
    return json.loads(Path(result_path).read_text())


def _parse_batches(batches) -> list[int]:
    out = [int(b) for b in batches]
    if not out or any(b < 1 for b in out):
        raise ValueError(f"--batch needs positive batch sizes, got {batches}")
    return sorted(set(out))


def run_bench(options: dict, progress: ProgressFn | None = None) -> dict:
    """options: heads, batches, widths, grid, order, codebook_size, seed, warmup, repeat,
    min_seconds, variants (subset of VARIANTS), bandwidth_mb. Returns the results (JSON-able)."""
    from ..compress import CompressionConfig, compress_model
    from ..exporter.int8_baseline import folded_xnnpack_bytes
    from ..exporter.outputs import track_temporary_directory
    from ..exporter.pipeline import to_executorch_bytes
    from ..measure import lutham_part_bytes
    from ..model.multihead import ModelConfig, build_model

    report = progress or (lambda stage, fraction: None)
    batches = _parse_batches(options.get("batches") or [1, 32])
    variants = list(options.get("variants") or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown bench variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    if REFERENCE not in variants:
        variants.append(REFERENCE)
    warmup = int(options.get("warmup", 3))
    repeat = int(options.get("repeat", 10))
    if warmup < 0 or repeat < 1:
        raise ValueError(f"--warmup must be >= 0 and --repeat >= 1, got {warmup} and {repeat}")
    model_config = ModelConfig(backbone="none", heads=int(options.get("heads", 1)),
                               widths=[int(w) for w in options["widths"]] if options.get("widths") else None,
                               grid=int(options.get("grid") or ModelConfig.grid), order=int(options.get("order") or ModelConfig.order),
                               seed=int(options.get("seed", 0)))
    model_config.validate()
    max_batch = max(batches)
    codebook = dict(codebook_size=int(options.get("codebook_size") or CompressionConfig.codebook_size), seed=model_config.seed)

    workdir = tempfile.mkdtemp(prefix="lutham-bench-")
    track_temporary_directory(workdir)  # SIGINT/SIGTERM exit through the lifeline, past the finally below
    try:
        report("build model", 0.0)
        dense = build_model(model_config)
        example = model_config.example_input()
        state_path = os.path.join(workdir, "model.pt")
        torch.save(dense.state_dict(), state_path)
        programs: dict[str, str] = {}
        file_bytes: dict[str, int] = {}
        lutham_bytes: dict[str, dict] = {}

        def write(name: str, data: bytes) -> None:
            path = os.path.join(workdir, f"{name}.pte")
            Path(path).write_bytes(data)
            programs[name], file_bytes[name] = path, len(data)

        builders = {
            "dense": lambda: to_executorch_bytes(dense, example, delegate=False, max_batch=max_batch),
            "folded-fp32": lambda: folded_xnnpack_bytes(dense, example, False, max_batch),
            "folded-int8": lambda: folded_xnnpack_bytes(dense, example, True, max_batch),
        }
        steps = [v for v in variants if v != "eager"]
        for i, name in enumerate(steps):
            report(f"export {name}", 0.05 + 0.55 * i / len(steps))
            if name in builders:
                write(name, builders[name]())
            else:
                config = CompressionConfig(**codebook) if name == "lutham-int" else CompressionConfig.fp32(**codebook)
                compressed, _ = compress_model(dense, config)
                data = to_executorch_bytes(compressed, example, delegate=True, max_batch=max_batch)
                lutham_bytes[name] = lutham_part_bytes(data)
                write(name, data)
                del compressed, data
        file_bytes["eager"] = os.path.getsize(state_path)

        gen = torch.Generator().manual_seed(model_config.seed + 7)
        inputs = []
        for b in batches:
            path = os.path.join(workdir, f"input-{b}.npy")
            np.save(path, (torch.rand(b, model_config.head_widths()[0], generator=gen) * 2 * INPUT_RANGE - INPUT_RANGE).numpy())
            inputs.append(path)
        del dense

        report("read bandwidth", 0.6)
        bandwidth = read_bandwidth(int(options.get("bandwidth_mb", 256)))

        runs: dict[str, dict] = {}
        order = ["eager"] + [v for v in VARIANTS if v != "eager"]
        to_run = [v for v in order if v in variants]
        for i, name in enumerate(to_run):
            report(f"run {name}", 0.62 + 0.38 * i / len(to_run))
            spec = dict(variant=name, batches=batches, inputs=inputs, dir=workdir, warmup=warmup, repeat=repeat,
                        min_seconds=float(options.get("min_seconds", 1.0)), max_repeat=int(options.get("max_repeat", 200)))
            if name == "eager":
                spec.update(model=vars(model_config), state_dict=state_path)
            else:
                spec.update(program=programs[name])
            runs[name] = _spawn(spec, workdir)
        report("done", 1.0)
        return _summarize(model_config, batches, to_run, runs, file_bytes, lutham_bytes, bandwidth, warmup, repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        track_temporary_directory(workdir, tracked=False)


def _summarize(model_config, batches, variants, runs, file_bytes, lutham_bytes, bandwidth, warmup, repeat) -> dict:
    bw = bandwidth["bytes_per_second"]
    rows = []
    eager_out = {r["batch"]: np.load(r["output"]) for r in runs["eager"]["results"]} if "eager" in runs else {}
    reference = {r["batch"]: r["median_ms"] for r in runs[REFERENCE]["results"]}
    for name in variants:
        run = runs[name]
        for r in run["results"]:
            y = np.load(r["output"])
            ref = eager_out.get(r["batch"])
            error = float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30)) if ref is not None else None
            row = dict(variant=name, label=VARIANTS[name], batch=r["batch"], median_ms=r["median_ms"], runs=r["runs"],
                       vs_lutham=r["median_ms"] / reference[r["batch"]], peak_rss_bytes=run["peak_rss_bytes"],
                       model_rss_bytes=run["peak_rss_bytes"] - run["rss_before_load_bytes"],
                       file_bytes=file_bytes.get(name), relative_l2_error_vs_eager=error)
            if name in lutham_bytes:
                part = lutham_bytes[name]
                read = part["payload_bytes"] + part["codebook_bytes"]
                bound_ms = read / bw * 1e3
                row.update(kernel_read_bytes=read, codebook_bytes=part["codebook_bytes"], bound_ms=bound_ms,
                           x_bound=r["median_ms"] / bound_ms)
            rows.append(row)
    return {
        "model": {"heads": model_config.heads, "widths": model_config.head_widths(), "grid": model_config.grid,
                  "order": model_config.order, "seed": model_config.seed, "backbone": "none"},
        "batches": batches, "warmup": warmup, "repeat": repeat, "reference": REFERENCE,
        "bandwidth": bandwidth, "machine": _machine(), "rows": rows,
    }


def _machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu or os.uname().machine, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0]}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "child":
        spec = json.loads(Path(argv[1]).read_text())
        result = _child_run(spec)
        Path(argv[2]).write_text(json.dumps(result))
        return 0
    print("usage: python -m lutham.bench.compare child SPEC.json RESULT.json (the CLI is `lutham bench`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
