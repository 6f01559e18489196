"""Real data that ships with Debian: Fashion-MNIST (package dataset-fashion-mnist)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path(os.environ.get("LUTHAM_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {body.size} values")
    return body.reshape(dims)


def load_fashion_mnist(split: str = "train", root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of the 'train' (60k) or 'test' (10k) split."""
    root = Path(root or FASHION_MNIST_DIR)
    prefix = {"train": "train", "test": "t10k"}[split]
    images = root / f"{prefix}-images-idx3-ubyte.gz"
    if not images.exists():
        raise FileNotFoundError(f"Fashion-MNIST not found at {root} (install the Debian package dataset-fashion-mnist)")
    return _read_idx(images), _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
