"""Running .pte programs in this process with LuthamBackend registered.

`load_backend()` loads build/delegate/liblutham_backend.so (built by
scripts/build-delegate.sh) with RTLD_GLOBAL. Its static initializer registers
"LuthamBackend" in the registry of libexecutorch.so, which is the same registry that
`executorch.runtime.Runtime` uses (its extension links that shared runtime), so
`Runtime.get()` then runs lutham.pte files.
"""

from __future__ import annotations

import ctypes
import sys
import os
from pathlib import Path
from typing import Sequence

import torch

BACKEND_NAME = "LuthamBackend"
LIBRARY_NAME = "liblutham_backend.so"
_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = _ROOT / "build" / "delegate"

_loaded: ctypes.CDLL | None = None


class BackendNotBuilt(RuntimeError):
    pass


def library_path() -> Path:
    """LUTHAM_BACKEND_LIB if set, else build/delegate/liblutham_backend.so."""
    env = os.environ.get("LUTHAM_BACKEND_LIB")
    return Path(env) if env else DEFAULT_BUILD_DIR / LIBRARY_NAME


def load_backend() -> ctypes.CDLL:
    """Loads the backend library once per process and checks that it registered."""
    global _loaded
    if _loaded is not None:
        return _loaded
    path = library_path()
    if not path.is_file():
        raise BackendNotBuilt(
            f"{path} does not exist: build the LUTHAM delegate first with scripts/build-delegate.sh "
            "(npm run setup does it)"
        )
    # The ExecuTorch runtime (libexecutorch.so) must be the one the Python extension uses:
    # importing executorch.runtime first loads it, and the backend binds to that copy.
    from executorch.runtime import Runtime

    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    lib.lutham_backend_registered.restype = ctypes.c_int
    if not lib.lutham_backend_registered():
        raise RuntimeError(f"{path} loaded but {BACKEND_NAME} failed to register (see the ExecuTorch log)")
    if BACKEND_NAME not in Runtime.get().backend_registry.registered_backend_names:
        raise RuntimeError(f"{BACKEND_NAME} registered in a different ExecuTorch runtime than executorch.runtime's")
    _loaded = lib
    return lib


def codebook_cache_stats() -> dict:
    """Counters of the backend's process-wide codebook cache."""
    lib = load_backend()
    out = (ctypes.c_uint64 * 4)()
    lib.lutham_codebook_cache_stats(out)
    return dict(loads=out[0], hits=out[1], live=out[2], copies=out[3])


def load_method(path: str | os.PathLike, method: str = "forward"):
    """(program, method) for a .pte file; keep the program alive while using the method."""
    load_backend()
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(Path(path))
    return program, program.load_method(method)


def run_program(path: str | os.PathLike, inputs: Sequence[torch.Tensor], method: str = "forward") -> list[torch.Tensor]:
    """Runs `method` of the .pte at `path` on `inputs` and returns its outputs."""
    program, m = load_method(path, method)
    outputs = m.execute(list(inputs))
    del program
    return list(outputs)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """`python -m lutham.runtime MODEL.pte [--input x.npy ...] [--output y.npy] [--repeat N] [--json]`.

    Runs the program in this process (LuthamBackend loaded), like lutham_runner: prints output
    shapes, a checksum and the median time of --repeat runs. Without --input it uses seeded
    uniform inputs in [-1.1, 1.1) of the program's input shapes. --output saves the first
    output (.npy). For `lutham run` in the CLI.
    """
    import argparse
    import json
    import time

    import numpy as np

    ap = argparse.ArgumentParser(prog="lutham run")
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--output")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    try:
        program, method = load_method(a.model)
    except BackendNotBuilt as e:
        print(f"lutham run: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # ExecuTorch reports load failures as RuntimeError; details are in its log
        print(f"lutham run: cannot load {a.model}: {e}", file=sys.stderr)
        return 1
    meta = method.metadata
    n_inputs = meta.num_inputs()
    if a.input and len(a.input) != n_inputs:
        ap.error(f"the program has {n_inputs} inputs, {len(a.input)} --input given")
    gen = torch.Generator().manual_seed(a.seed)
    inputs = []
    for i in range(n_inputs):
        shape = tuple(meta.input_tensor_meta(i).sizes())
        if a.input:
            arr = np.load(a.input[i]).astype(np.float32)
            if arr.shape != shape:
                ap.error(f"{a.input[i]} has shape {arr.shape}, input {i} needs {shape}")
            inputs.append(torch.from_numpy(arr))
        else:
            inputs.append(torch.rand(shape, generator=gen) * 2.2 - 1.1)
    times, outputs = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        outputs = list(method.execute(inputs))
        times.append((time.perf_counter() - t0) * 1e3)
    median = float(np.median(times))
    flat = np.concatenate([o.detach().numpy().astype(np.float32).reshape(-1) for o in outputs])
    info = dict(model=str(a.model), outputs=[list(o.shape) for o in outputs], sum=float(flat.sum(dtype=np.float64)),
                abs_sum=float(np.abs(flat).sum(dtype=np.float64)), median_ms=median, repeat=a.repeat)
    if a.output:
        np.save(a.output, outputs[0].detach().numpy())
    if a.json:
        print(json.dumps(info))
    else:
        for i, o in enumerate(outputs):
            print(f"output {i}: {str(o.dtype).replace('torch.', '')} {list(o.shape)}")
        print(f"checksum: sum={info['sum']:.9g} abs_sum={info['abs_sum']:.9g}")
        print(f"median: {median:.4f} ms over {a.repeat} runs")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli())
