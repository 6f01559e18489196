"""Dense and SHARe-KAN .pte files from one model.

dense.pte:  the KAN layers as ordinary ATen ops (ExecuTorch's portable/optimized kernels).
lutham.pte: every KAN layer delegated to LuthamBackend; codebooks in named data.
In both the backbone runs on XNNPACK (fp32); see lowering.py.
Both are memory-planned (greedy) and written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import lowering


def to_executorch_bytes(model: torch.nn.Module, example: torch.Tensor, delegate: bool, max_batch: int = 1,
                        backbone_xnnpack: bool = True) -> bytes:
    """The .pte bytes; lowering.py says which partitioner takes what (backbone: XNNPACK) and
    makes the batch dynamic (1..max_batch) when max_batch > 1."""
    exported = lowering.export_program(model, example, max_batch)
    return lowering.lower_to_bytes(exported, lowering.partitioners(delegate, backbone_xnnpack))


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
