"""The one atomic file writer: a failure never leaves a partial file where the user looks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """The mode a plain open() gives a new file: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_synced(fd: int, data: bytes) -> None:
    """Writes `data` to the open file `fd`, on disk (fsync) before this returns, and closes it."""
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike, data: bytes) -> int:
    """Write to a temp file beside `path`, fsync, rename: a failure never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp creates 0600; give the usual file mode
        write_synced(fd, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return len(data)
