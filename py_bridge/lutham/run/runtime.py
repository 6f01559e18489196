"""Running .pte programs in this process with LuthamBackend registered.

`load_backend()` loads build/delegate/liblutham_backend.so (built by
scripts/build-delegate.sh) with RTLD_GLOBAL. Its static initializer registers
"LuthamBackend" in the registry of libexecutorch.so, which is the same registry that
`executorch.runtime.Runtime` uses (its extension links that shared runtime), so
`Runtime.get()` then runs lutham.pte files.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import sys
import os
from pathlib import Path
from typing import Sequence

import torch

from ..files import file_mode, write_atomic

BACKEND_NAME = "LuthamBackend"
LIBRARY_NAME = "liblutham_backend.so"
_ROOT = Path(__file__).resolve().parents[3]
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


def method_order(name: str) -> tuple:
    """Sorts method names as a person reads them: head_2 before head_10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def method_list(names) -> str:
    """The names in method_order, a run of consecutive numbered ones as one range: "backbone,
    forward, head_0 .. head_49"."""
    runs: list[list] = []  # [prefix, first, last] or [name]
    for name in sorted(names, key=method_order):
        m = re.fullmatch(r"(.*?_)(\d+)", name)
        last = runs[-1] if runs else None
        if m and last and len(last) == 3 and last[0] == m[1] and int(m[2]) == last[2] + 1:
            last[2] = int(m[2])
        else:
            runs.append([m[1], int(m[2]), int(m[2])] if m else [name])
    def text(r: list) -> str:
        if len(r) == 1:
            return r[0]
        prefix, first, last = r
        if last - first < 2:
            return ", ".join(f"{prefix}{k}" for k in range(first, last + 1))
        return f"{prefix}{first} .. {prefix}{last}"

    return ", ".join(text(r) for r in runs)


def load_method(path: str | os.PathLike, method: str = "forward", data: str | os.PathLike | None = None,
                enable_etdump: bool = False):
    """(program, method) for a .pte file (and the .ptd holding its external data, if any); keep
    the program alive while using the method. enable_etdump: ExecuTorch records an ETDump of
    the runs (program.write_etdump_result_to_file writes it). A method the program lacks is a
    RunError listing those it has (export --methods per-head writes backbone, head_k, forward)."""
    load_backend()
    from executorch.runtime import Runtime, Verification

    # The flatbuffers verifier over the whole program (ExecuTorch's default here, asked for
    # explicitly): a corrupted offset is refused instead of followed in Method::init.
    program = Runtime.get().load_program(Path(path), verification=Verification.InternalConsistency,
                                         data_path=None if data is None else Path(data), enable_etdump=enable_etdump)
    if method not in program.method_names:
        raise RunError(f"{path} has no method '{method}' (it has: {method_list(program.method_names)})")
    return program, program.load_method(method)


def run_program(path: str | os.PathLike, inputs: Sequence[torch.Tensor], method: str = "forward",
                data: str | os.PathLike | None = None) -> list[torch.Tensor]:
    """Runs `method` of the .pte at `path` (with its .ptd `data`) on `inputs`; returns the outputs."""
    program, m = load_method(path, method, data)
    outputs = m.execute(list(inputs))
    del program
    return list(outputs)


class RunError(ValueError):
    """Bad input to run_file (shape, count, file): a one-line message for the user."""


PTE_IDENTIFIER = b"ET12"


class NativeLog:
    """What C code (ExecuTorch's ET_LOG, cpuinfo) wrote while `capture_native_log` ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def text(self) -> str:
        with open(self.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def first_line(self) -> str:
        """The first line logged (the cause; later ones say what failed because of it), without
        its "[file.cpp:12] " or "E 00:00:00.001 executorch:file.cpp:12] " prefix; '' if none."""
        # ExecuTorch's cpuinfo probing logs at the first load, failure or not: never the cause.
        lines = [l.strip() for l in self.text().splitlines() if l.strip() and "cpuinfo_utils.cpp" not in l]
        return re.sub(r"^(?:[EWIDF] [\d:.]+ \S+\] |\[[^\]]+\] )", "", lines[0]) if lines else ""


@contextlib.contextmanager
def capture_native_log():
    """Points fds 1 and 2 at a temp file: ExecuTorch's log lines reach the user only through our errors."""
    import tempfile

    # fd 1 too: some C code prints to stdout, which would corrupt `--json` output. And the
    # Python objects: ExecuTorch's Python extension logs through sys.stderr.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {n: os.dup(n) for n in (1, 2)}
    saved_streams = sys.stdout, sys.stderr
    # The CLI names the file (LUTHAM_NATIVE_LOG, in a folder it removes): if C code aborts this
    # process, the CLI reads the cause from it; a process that ends normally removes it below.
    path = os.environ.get("LUTHAM_NATIVE_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    else:
        fd, path = tempfile.mkstemp(prefix="lutham-native-", suffix=".log")
    stream = open(fd, "w", buffering=1, closefd=False)
    try:
        for n in saved:
            os.dup2(fd, n)
        sys.stdout = sys.stderr = stream
        yield NativeLog(path)
    finally:
        stream.flush()
        sys.stdout, sys.stderr = saved_streams
        for n, old in saved.items():
            os.dup2(old, n)
            os.close(old)
        stream.close()
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass


def check_pte_header(model: str | os.PathLike, identifier: bytes = PTE_IDENTIFIER, kind: str = ".pte") -> None:
    """The checks before ExecuTorch sees the file (it aborts on some garbage): a regular file
    with the .pte (or .ptd) identifier (the TypeScript reader, ts/pte/file.ts, validates the rest)."""
    p = Path(model)
    if not p.exists():
        raise RunError(f"no such file: {model}")
    if not p.is_file():
        raise RunError(f"cannot run {model}: not a regular file")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != identifier:
        raise RunError(f"{model} is not a {kind} file (identifier {head[4:8]!r}, expected {identifier!r})")


# LuthamBackend's words for a codebook key it could not resolve (codebook_cache.cpp).
_MISSING_CODEBOOK = re.compile(r"codebook '([^']+)' not found|no named data map, so codebook '([^']+)'")


def missing_data_error(model, data, detail: str) -> str | None:
    """The one line for a program whose codebooks are in a .ptd that was not given or is another one."""
    m = _MISSING_CODEBOOK.search(detail)
    if not m:
        return None
    key = m.group(1) or m.group(2)
    if data is None:
        return (f"cannot load {model}: it needs codebook {key} from a .ptd file "
                f"(export --external-data writes lutham.ptd beside it): pass --data FILE")
    return f"cannot load {model}: {data} does not hold codebook {key} (it is not the .ptd this program was exported with)"


def _save_npy(path: str, array) -> None:
    """np.save to exactly `path` (np.save on a name would append .npy), via a temp file + rename."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as e:
        raise RunError(f"cannot write --output {path}: {e.strerror or e}") from None


def executorch_message(e: Exception) -> str:
    """ExecuTorch's pybindings print an error code as "error: 0x:23"; give it as "error 0x23"."""
    return re.sub(r"error: 0x:([0-9a-fA-F]+)", r"error 0x\1", str(e))


def run_file(model: str | os.PathLike, inputs: Sequence[str] = (), output: str | None = None,
             repeat: int = 10, seed: int = 0, data: str | os.PathLike | None = None,
             profile: str | os.PathLike | None = None, etrecord: str | os.PathLike | None = None,
             method: str = "forward") -> dict:
    """Runs a method of a .pte like lutham_runner: returns output shapes, a checksum and the median time.

    `inputs` are .npy files, one per program input; without them, seeded uniform inputs in
    [-1.1, 1.1) of the program's input shapes. `output` saves the first output as .npy.
    `data`: the .ptd holding the program's external data (export --external-data).
    `profile`: write the runs' ETDump there and return ExecuTorch's per-layer profile of them
    (run/profile.py) as "profile"; `etrecord` names its layers (default: lutham.etrecord beside
    the .pte, if there). `method`: which of the program's methods (export --methods per-head
    writes backbone, head_k and forward); an unknown name is a RunError listing them.
    """
    if repeat < 1:
        raise RunError(f"--repeat must be at least 1, got {repeat}")
    check_pte_header(model)
    if data is not None:
        from ..lower.serialization.external_data import PTD_IDENTIFIER

        check_pte_header(data, PTD_IDENTIFIER, ".ptd")
    if output and not Path(output).parent.is_dir():
        raise RunError(f"cannot write --output {output}: no such directory {Path(output).parent}")
    if profile is not None:
        from .profile import default_etrecord

        if not Path(profile).parent.is_dir():
            raise RunError(f"cannot write --etdump {profile}: no such directory {Path(profile).parent}")
        if etrecord is not None and not Path(etrecord).is_file():
            raise RunError(f"--etrecord: no such file {etrecord}")
        etrecord = etrecord if etrecord is not None else default_etrecord(model)
    with capture_native_log() as log:
        result = _run_file(model, inputs, output, repeat, seed, data, log, profile, method)
    if profile is not None:
        from .profile import profile_table

        result["profile"] = profile_table(profile, etrecord, method)
    return result


def _write_etdump(program, path) -> None:
    """The program's ETDump to exactly `path`, via a temp file + rename (the debug buffer is not kept)."""
    import tempfile

    directory = Path(path).parent
    fd, temp = tempfile.mkstemp(prefix=".lutham-etdump-", dir=directory)
    os.close(fd)
    debug = temp + ".debug"
    try:
        program.write_etdump_result_to_file(temp, debug)
        os.chmod(temp, file_mode())  # mkstemp creates 0600; give the usual file mode
        os.replace(temp, path)
    except Exception as e:
        raise RunError(f"cannot write --etdump {path}: {e}") from None
    finally:
        for leftover in (temp, debug):
            try:
                os.unlink(leftover)
            except OSError:
                pass


def _run_file(model, inputs, output, repeat, seed, data, log: NativeLog, profile=None, method_name: str = "forward") -> dict:
    import time

    import numpy as np

    try:
        program, method = load_method(model, method_name, data, enable_etdump=profile is not None)
    except (BackendNotBuilt, RunError):
        raise
    except Exception as e:  # ExecuTorch reports load failures as RuntimeError; details are in its log
        detail = log.first_line()
        missing = missing_data_error(model, data, log.text())
        if missing:
            raise RunError(missing) from None
        raise RunError(f"cannot load {model}: {executorch_message(e)}" + (f" ({detail})" if detail else "")) from None
    meta = method.metadata
    n_inputs = meta.num_inputs()
    if inputs and len(inputs) != n_inputs:
        raise RunError(f"the program has {n_inputs} inputs, {len(inputs)} --input given")
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for i in range(n_inputs):
        shape = tuple(meta.input_tensor_meta(i).sizes())
        if inputs:
            try:
                arr = np.load(inputs[i]).astype(np.float32)
            except Exception as e:
                raise RunError(f"cannot read {inputs[i]} as .npy: {e}") from None
            # A dynamic-batch program (export --max-batch N) reports its upper bound: fewer rows are fine.
            smaller_batch = arr.ndim == len(shape) >= 1 and arr.shape[1:] == shape[1:] and 1 <= arr.shape[0] <= shape[0]
            if arr.shape != shape and not smaller_batch:
                raise RunError(f"{inputs[i]} has shape {arr.shape}, input {i} needs {shape} (method {method_name})")
            tensors.append(torch.from_numpy(arr))
        else:
            tensors.append(torch.rand(shape, generator=gen) * 2.2 - 1.1)
    from .backend_stats import ExecuteClock

    clock = ExecuteClock()  # splits each run into KAN heads (inside LuthamBackend) and the rest
    times, head_times, head_calls, outputs = [], [], 0, []
    for _ in range(repeat):
        before = clock.read()
        t0 = time.perf_counter()
        try:
            outputs = list(method.execute(tensors))
        except Exception as e:  # e.g. a smaller batch given to a static-batch program
            detail = log.first_line()
            raise RunError(f"cannot run {model} on these inputs (shapes {[tuple(t.shape) for t in tensors]}): {e}"
                           + (f" ({detail})" if detail else "")) from None
        times.append((time.perf_counter() - t0) * 1e3)
        after = clock.read()
        head_times.append((after[1] - before[1]) / 1e6)
        head_calls += after[0] - before[0]
    flat = np.concatenate([o.detach().numpy().astype(np.float32).reshape(-1) for o in outputs])
    if output:
        _save_npy(output, outputs[0].detach().numpy())
    if profile is not None:
        _write_etdump(program, profile)
    del program
    # NaN/Inf inputs are allowed (they show what the model does with them) and are reported.
    non_finite_inputs = [int((~torch.isfinite(t)).sum()) for t in tensors]
    return dict(model=str(model), method=method_name, outputs=[list(o.shape) for o in outputs],
                dtypes=[str(o.dtype).replace("torch.", "") for o in outputs],
                sum=float(flat.sum(dtype=np.float64)), abs_sum=float(np.abs(flat).sum(dtype=np.float64)),
                median_ms=float(np.median(times)), repeat=repeat, output=output,
                non_finite_inputs=non_finite_inputs, non_finite_outputs=int((~np.isfinite(flat)).sum()),
                **_time_split(times, head_times, head_calls))


def _time_split(times: list[float], head_times: list[float], head_calls: int) -> dict:
    """Median time inside LuthamBackend (the KAN heads) and of the rest (backbone + glue ops)."""
    import numpy as np

    if head_calls == 0:
        return dict(head_ms=None, backbone_ms=None,
                    split="unavailable: no LuthamBackend delegate ran (the heads run on ExecuTorch's kernels)")
    return dict(head_ms=float(np.median(head_times)),
                backbone_ms=float(np.median([t - h for t, h in zip(times, head_times)])),
                split="head: time inside LuthamBackend (the KAN layers); backbone: the rest of each run")


