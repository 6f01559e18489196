"""`lutham bench`: LUTHAM against what KAN users run today and against the limit of any dense
method, on one seeded model (KAN heads on a flat input), in one process tree.

The parent writes the inputs, measures the read bandwidth (bench/machine.py: lutham_membw,
the C++ multi-threaded read-only loop), then for each variant, one at a time, starts a child
that builds its program from the seed (a dynamic-batch .pte that serves every batch size)
and a second child that times it, so every peak RSS is its own and the parent never holds
anything dense:

  eager         PyTorch eager, efficient-kan's forward (kan.py)
  dense         dense.pte: the efficient-kan graph on ExecuTorch's portable kernels
  folded-fp32   [silu(x), B(x)] @ W^T with W pre-folded, on XNNPACK fp32 (exporter/int8_baseline.py)
  folded-int8   the same after PT2E dynamic int8 (XNNPACKQuantizer, per-channel): what users ship
  matmul-fp32   the folded matmuls ALONE on XNNPACK fp32, fed the features (bench/matmul.py)
  matmul-int8   the same in dynamic int8: the basis comes for free, the limit of any dense method
  lutham-int    lutham.pte, default integer storage, KAN layers on LuthamBackend
  lutham-int8   the same file exported with --compute int8: LuthamBackend's integer mode
  lutham-fp32   lutham.pte with float32 storage

Timing (in the child): the first call runs on the exact input and its output is kept (every
variant must compute the same function); then `warmup` untimed runs and at least `repeat`
timed runs (warm: also at least `min_seconds`), each on a fresh input (the first value moved
by (run + 1) * 2^-20, so LuthamBackend cannot reuse the bases it kept from the last input).
cold: before every run, warm-up or timed, a buffer of >= 2x the LLC (and >= 512 MiB) is
written end to end, outside the timed region. Medians are reported; for LUTHAM also the
median time inside LuthamBackend::execute. Every .pte is also timed by build/delegate/lutham_runner
(C++, the program as an app runs it: no Python, no pybind), with the same inputs, fresh-input
step, runs and eviction: the difference is the Python call path's cost.

Bytes read per inference: what the program holds and reads once per run, from its file
(bench/bytes.py): LuthamBackend payloads + codebooks for LUTHAM, the weights (int8 + scales,
or fp32) for the others; eager: its parameters and buffers. bound = bytes / read bandwidth;
x_bound = time / bound. No number here is asserted on by tests.
"""

from __future__ import annotations

import ctypes
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
    "matmul-fp32": "folded matmuls alone, XNNPACK fp32 (basis for free)",
    "matmul-int8": "folded matmuls alone, XNNPACK int8 (basis for free)",
    "lutham-int": "lutham.pte, LuthamBackend int",
    "lutham-int8": "lutham.pte, LuthamBackend int, --compute int8",
    "lutham-fp32": "lutham.pte, LuthamBackend fp32",
}
BASIS_FREE = ("matmul-fp32", "matmul-int8")
LUTHAM = ("lutham-int", "lutham-int8", "lutham-fp32")
REFERENCE = "lutham-int"
MODES = ("warm", "cold")
INPUT_RANGE = 1.1  # inputs uniform in [-1.1, 1.1): the grid range plus a margin on both sides
FRESH_STEP = 2.0 ** -20

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


def _model_config(spec: dict):
    from ..model.multihead import ModelConfig

    return ModelConfig(**spec["model"])


def _child_prepare(spec: dict) -> dict:
    """Builds one variant's program from the seed into spec["program"]; returns its sizes."""
    from ..files import write_atomic
    from .bytes import program_read_bytes

    variant, config, max_batch = spec["variant"], _model_config(spec), spec["max_batch"]
    example = config.example_input()
    inputs = [torch.from_numpy(np.load(p)) for p in spec["inputs"]]
    program_inputs = [[p] for p in spec["inputs"]]
    if variant in BASIS_FREE:
        from . import matmul

        model, features = matmul.build(config, inputs)
        data = matmul.program_bytes(model, features[0], variant == "matmul-int8", max_batch)
        del model
        program_inputs = []
        for batch, per_layer in zip(spec["batches"], features):
            paths = []
            for l, f in enumerate(per_layer):
                paths.append(os.path.join(spec["dir"], f"features-{batch}-{l}.npy"))
                np.save(paths[-1], f.numpy())
            program_inputs.append(paths)
    else:
        from ..exporter.pipeline import to_executorch_bytes
        from ..model.multihead import build_model

        dense = build_model(config)
        if variant == "dense":
            data = to_executorch_bytes(dense, example, delegate=False, max_batch=max_batch)
        elif variant in ("folded-fp32", "folded-int8"):
            from ..exporter.int8_baseline import folded_xnnpack_bytes

            data = folded_xnnpack_bytes(dense, example, variant == "folded-int8", max_batch)
        else:
            from ..compress import CompressionConfig, compress_model

            codebook = dict(codebook_size=spec["codebook_size"], seed=config.seed)
            compression = CompressionConfig.fp32(**codebook) if variant == "lutham-fp32" else CompressionConfig(**codebook)
            compressed, _ = compress_model(dense, compression)
            del dense
            if variant == "lutham-int8":
                from ..compress.int8 import set_compute

                set_compute(compressed, "int8")
            data = to_executorch_bytes(compressed, example, delegate=True, max_batch=max_batch)
            del compressed
    write_atomic(spec["program"], data)
    return {"variant": variant, "file_bytes": len(data), **program_read_bytes(data), "inputs": program_inputs,
            "peak_rss_bytes": _peak_rss()}


def _child_time(spec: dict) -> dict:
    """One variant in this (child) process: load it, time every batch in every mode, save its outputs."""
    from .machine import Evictor

    variant = spec["variant"]
    stats = None
    if variant != "eager":
        from ..run.runtime import load_backend

        lib = load_backend()  # the runtime's own memory is not the model's
        if variant in LUTHAM:
            stats = lib.lutham_execute_stats
            stats.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
    baseline_rss = _rss_now()
    extra: dict = {}
    if variant == "eager":
        from ..model.multihead import build_model

        model = build_model(_model_config(spec)).eval()
        extra["read_bytes"] = sum(t.nbytes for t in list(model.parameters()) + list(model.buffers()))

        def forward(xs):
            with torch.no_grad():
                return model(*xs)
    else:
        from ..run.runtime import load_method

        program, method = load_method(spec["program"])

        def forward(xs):
            return method.execute(list(xs))[0]

    loaded_rss = _rss_now()
    evictor = Evictor(spec["evict_mib"]) if "cold" in spec["modes"] else None
    counters = (ctypes.c_uint64 * 2)()

    def backend_nanos() -> int:
        stats(counters)
        return int(counters[1])

    results = []
    for batch, paths in zip(spec["batches"], spec["inputs"]):
        xs = [torch.from_numpy(np.load(p)) for p in paths]
        y = forward(xs)
        out_path = os.path.join(spec["dir"], f"out-{variant}-{batch}.npy")
        np.save(out_path, y.detach().numpy().astype(np.float32))
        first = xs[0].view(-1)
        original = float(first[0])
        run = 0

        def call(timed: list | None, backend: list | None, cold: bool) -> None:
            nonlocal run
            run += 1
            first[0] = original + run * FRESH_STEP
            if cold:
                evictor.evict()
            b0 = backend_nanos() if stats is not None else 0
            t0 = time.perf_counter()
            forward(xs)
            t1 = time.perf_counter()
            if timed is not None:
                timed.append((t1 - t0) * 1e3)
                if stats is not None:
                    backend.append((backend_nanos() - b0) / 1e6)

        for mode in spec["modes"]:
            cold = mode == "cold"
            for _ in range(spec["warmup"]):
                call(None, None, cold)
            times: list[float] = []
            backend: list[float] = []
            started = time.perf_counter()
            # Cold runs stop at `repeat`: each eviction writes hundreds of MB.
            while len(times) < spec["repeat"] or (not cold and time.perf_counter() - started < spec["min_seconds"]
                                                 and len(times) < spec["max_repeat"]):
                call(times, backend, cold)
            row = {"batch": batch, "mode": mode, "median_ms": float(np.median(times)), "runs": len(times), "output": out_path}
            if backend:
                row["backend_median_ms"] = float(np.median(backend))
            results.append(row)
        first[0] = original
    return {"variant": variant, "results": results, "peak_rss_bytes": _peak_rss(),
            "rss_before_load_bytes": baseline_rss, "rss_after_load_bytes": loaded_rss, **extra}


def _spawn(kind: str, spec: dict, workdir: str) -> dict:
    spec_path = os.path.join(workdir, f"{kind}-{spec['variant']}.json")
    result_path = os.path.join(workdir, f"{kind}-result-{spec['variant']}.json")
    Path(spec_path).write_text(json.dumps(spec))
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "lutham.bench.compare", kind, spec_path, result_path],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = [l for l in proc.stderr.strip().splitlines() if l.strip()][-1:] or ["no message"]
        raise RuntimeError(f"bench variant {spec['variant']} failed to {kind} (exit {proc.returncode}): {last[0]}")
    return json.loads(Path(result_path).read_text())


def runner_path() -> Path:
    """lutham_runner next to the backend library (build/delegate, or LUTHAM_BACKEND_LIB's folder)."""
    from ..run.runtime import library_path
    return library_path().parent / "lutham_runner"


def _runner_times(program: str, inputs: list[list[str]], batches: list[int], results: list[dict], warmup: int,
                  evict_mib: int, workdir: str) -> dict[str, dict]:
    """lutham_runner's median (and time inside LuthamBackend) per "batch/mode", as many runs as the
    Python timing took; {} without the runner."""
    tool = runner_path()
    if not tool.is_file():
        return {}
    out: dict[str, dict] = {}
    for batch, paths in zip(batches, inputs):
        raw = []
        for p in paths:
            raw_path = os.path.splitext(p)[0] + ".bin"
            np.load(p).astype("<f4").tofile(raw_path)
            raw.append(raw_path)
        for r in (r for r in results if r["batch"] == batch):
            cmd = [str(tool), "--model", program, "--batch", str(batch), "--repeat", str(r["runs"]), "--warmup", str(warmup),
                   "--fresh-inputs", "--json"]
            for path in raw:
                cmd += ["--input", path]
            if r["mode"] == "cold":
                cmd += ["--cold", "--evict-mib", str(evict_mib)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = [l for l in proc.stderr.strip().splitlines() if l.strip()][-1:] or ["no message"]
                raise RuntimeError(f"lutham_runner failed on {os.path.basename(program)} (exit {proc.returncode}): {last[0]}")
            j = json.loads(proc.stdout.strip().splitlines()[-1])
            out[f"{batch}/{r['mode']}"] = {"median_ms": j["median_ms"], "backend_median_ms": j["backend_median_ms"]}
    return out


def _parse_batches(batches) -> list[int]:
    out = [int(b) for b in batches]
    if not out or any(b < 1 for b in out):
        raise ValueError(f"--batch needs positive batch sizes, got {batches}")
    return sorted(set(out))


def run_bench(options: dict, progress: ProgressFn | None = None) -> dict:
    """options: heads, batches, widths, grid, order, codebook_size, seed, warmup, repeat,
    min_seconds, variants (subset of VARIANTS), cold, evict_mib, bandwidth_mb. Returns the
    results (JSON-able); ts/render/bench.ts renders them."""
    from ..compress import CompressionConfig
    from ..exporter.outputs import track_temporary_directory
    from ..model.multihead import ModelConfig
    from .machine import cpu, default_evict_mib, read_bandwidth

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
    modes = ["warm", "cold"] if options.get("cold") else ["warm"]
    evict_mib = int(options.get("evict_mib") or default_evict_mib())
    bandwidth_mb = options.get("bandwidth_mb")
    codebook_size = int(options.get("codebook_size") or CompressionConfig.codebook_size)

    workdir = tempfile.mkdtemp(prefix="lutham-bench-")
    track_temporary_directory(workdir)  # SIGINT/SIGTERM exit through the lifeline, past the finally below
    try:
        report("inputs", 0.0)
        gen = torch.Generator().manual_seed(model_config.seed + 7)
        inputs = []
        for b in batches:
            path = os.path.join(workdir, f"input-{b}.npy")
            np.save(path, (torch.rand(b, model_config.head_widths()[0], generator=gen) * 2 * INPUT_RANGE - INPUT_RANGE).numpy())
            inputs.append(path)

        report("read bandwidth", 0.02)
        bandwidth = read_bandwidth(int(bandwidth_mb) if bandwidth_mb else None)

        order = [v for v in VARIANTS if v in variants]
        common = dict(model=vars(model_config), batches=batches, max_batch=max(batches), dir=workdir,
                      codebook_size=codebook_size)
        prepared: dict[str, dict] = {}
        runs: dict[str, dict] = {}
        for i, name in enumerate(order):
            step = 0.05 + 0.95 * i / len(order)
            program = os.path.join(workdir, f"{name}.pte")
            if name == "eager":
                prepared[name] = {"inputs": [[p] for p in inputs]}
            else:
                report(f"export {name}", step)
                prepared[name] = _spawn("prepare", dict(common, variant=name, inputs=inputs, program=program), workdir)
            report(f"run {name}", step + 0.5 * 0.95 / len(order))
            runs[name] = _spawn("time", dict(common, variant=name, program=program, inputs=prepared[name]["inputs"],
                                             warmup=warmup, repeat=repeat, modes=modes, evict_mib=evict_mib,
                                             min_seconds=float(options.get("min_seconds", 1.0)),
                                             max_repeat=int(options.get("max_repeat", 200))), workdir)
            if name != "eager":
                runs[name]["runner"] = _runner_times(program, prepared[name]["inputs"], batches, runs[name]["results"],
                                                     warmup, evict_mib, workdir)
            if os.path.exists(program):
                os.remove(program)  # 50 dense heads are GBs: keep one program on disk at a time
        report("done", 1.0)
        return _summarize(model_config, batches, modes, order, runs, prepared, bandwidth, warmup, repeat, evict_mib, cpu())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        track_temporary_directory(workdir, tracked=False)


def _summarize(model_config, batches, modes, variants, runs, prepared, bandwidth, warmup, repeat, evict_mib, machine) -> dict:
    bw = bandwidth["bytes_per_second"]
    rows = []
    eager_out = {r["batch"]: np.load(r["output"]) for r in runs["eager"]["results"]} if "eager" in runs else {}
    reference = {(r["batch"], r["mode"]): r for r in runs[REFERENCE]["results"]}
    for name in variants:
        run, prep = runs[name], prepared[name]
        read = prep.get("read_bytes", run.get("read_bytes"))
        for r in run["results"]:
            y = np.load(r["output"])
            ref = eager_out.get(r["batch"])
            error = float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30)) if ref is not None else None
            bound_ms = read / bw * 1e3
            row = dict(variant=name, label=VARIANTS[name], batch=r["batch"], mode=r["mode"], median_ms=r["median_ms"],
                       runs=r["runs"], vs_lutham=r["median_ms"] / reference[(r["batch"], r["mode"])]["median_ms"],
                       basis_free=name in BASIS_FREE, peak_rss_bytes=run["peak_rss_bytes"],
                       model_rss_bytes=run["peak_rss_bytes"] - run["rss_before_load_bytes"],
                       export_peak_rss_bytes=prep.get("peak_rss_bytes"), file_bytes=prep.get("file_bytes"),
                       read_bytes=read, read_bytes_method=prep.get("read_bytes_method", "parameters and buffers"),
                       bound_ms=bound_ms, x_bound=r["median_ms"] / bound_ms, relative_l2_error_vs_eager=error)
            timed = run.get("runner", {}).get(f"{r['batch']}/{r['mode']}")
            ref_timed = runs[REFERENCE].get("runner", {}).get(f"{r['batch']}/{r['mode']}")
            if timed is not None:
                row.update(runner_median_ms=timed["median_ms"], runner_x_bound=timed["median_ms"] / bound_ms)
                if ref_timed is not None:
                    row["runner_vs_lutham"] = timed["median_ms"] / ref_timed["median_ms"]
                if "backend_median_ms" in r:
                    row["runner_backend_median_ms"] = timed["backend_median_ms"]
            if "backend_median_ms" in r:
                row.update(backend_median_ms=r["backend_median_ms"], backend_x_bound=r["backend_median_ms"] / bound_ms,
                           codebook_bytes=prep["codebook_bytes"])
            rows.append(row)
    return {
        "model": {"heads": model_config.heads, "widths": model_config.head_widths(), "grid": model_config.grid,
                  "order": model_config.order, "seed": model_config.seed, "backbone": "none"},
        "batches": batches, "modes": modes, "warmup": warmup, "repeat": repeat, "reference": REFERENCE,
        "evict_bytes": evict_mib * 1024 * 1024 if "cold" in modes else None,
        "bandwidth": bandwidth, "machine": dict(machine, torch_threads=torch.get_num_threads(),
                                                load_average_1min=os.getloadavg()[0]),
        "rows": rows,
    }


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] in ("prepare", "time"):
        spec = json.loads(Path(argv[1]).read_text())
        result = (_child_prepare if argv[0] == "prepare" else _child_time)(spec)
        Path(argv[2]).write_text(json.dumps(result))
        return 0
    print("usage: python -m lutham.bench.compare {prepare,time} SPEC.json RESULT.json (the CLI is `lutham bench`)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
