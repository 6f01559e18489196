"""Dense and SHARe-KAN .pte files from one model.

dense.pte:  the KAN layers as ordinary ATen ops (ExecuTorch's portable/optimized kernels).
lutham.pte: every KAN layer delegated to LuthamBackend; codebooks in named data.
Both are memory-planned (greedy) and written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
from executorch.exir.passes import MemoryPlanningPass

from . import backend as _backend  # noqa: F401  (LuthamBackend must be imported to be found by name)
from .partition import LuthamPartitioner


def to_executorch_bytes(model: torch.nn.Module, example: torch.Tensor, delegate: bool) -> bytes:
    exported = torch.export.export(model, (example,), strict=False)
    edge = to_edge_transform_and_lower(exported, partitioner=[LuthamPartitioner()] if delegate else None)
    program = edge.to_executorch(ExecutorchBackendConfig(memory_planning_pass=MemoryPlanningPass(alloc_graph_input=True, alloc_graph_output=True)))
    return program.buffer


def write_atomic(path: str | os.PathLike, data: bytes) -> int:
    """Write to a temp file beside `path`, fsync, rename: a failure never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return len(data)
