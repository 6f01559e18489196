"""Datasets for the evaluation: images as float32 (N, C, H, W), int64 labels.

8-bit pixels (uint8: the built-in dataset, image folders, a uint8 .npz) are mapped to the
`--pixels` range (default -1,1, the KAN grid's range the built-in models are trained on); any
other .npz array is fed as given, only cast to float32."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .fashion_mnist import load_fashion_mnist

CALIBRATION_SIZE = 5000  # training images used to fine-tune codebooks (--finetune-codebook)
PIXELS = {"-1,1": (np.float32(127.5), np.float32(1.0)), "0,1": (np.float32(255.0), np.float32(0.0))}  # x / a - b
DEFAULT_PIXELS = "-1,1"
AS_GIVEN = "as given (float32)"


@dataclass
class Data:
    name: str
    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    key: str  # identifies the data for the checkpoint cache
    notes: list[str] = field(default_factory=list)
    pixels: str = DEFAULT_PIXELS  # the --pixels range of 8-bit pixels, or AS_GIVEN

    def calibration(self, size: int = CALIBRATION_SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded sample of the training split (no test image is ever used to fit anything)."""
        n = min(size, len(self.x_train))
        idx = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(seed + 7))[:n]
        return self.x_train[idx], self.y_train[idx]

    def describe(self) -> dict:
        return dict(name=self.name, source=self.source, train=len(self.x_train), test=len(self.x_test),
                    classes=self.classes, input_shape=list(self.x_train.shape[1:]), notes=list(self.notes),
                    pixels=self.pixels)


def to_model_input(x: np.ndarray, pixels: str = DEFAULT_PIXELS) -> np.ndarray:
    """uint8 pixels -> float32 in the `pixels` range; any other array as given, cast to float32
    (values are never rescaled: a model trained on [0, 1] must see [0, 1]). Images get a channel axis."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        scale, shift = PIXELS[pixels]
        x = x.astype(np.float32) / scale - shift
    else:
        x = x.astype(np.float32)
    if x.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC -> NCHW
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _tensors(x, y, pixels: str):
    # A fresh tensor: numpy may give size-1 axes a 0 stride, which ExecuTorch rejects.
    xs = to_model_input(x, pixels)
    return torch.empty(xs.shape, dtype=torch.float32).copy_(torch.from_numpy(xs)), torch.from_numpy(np.asarray(y).astype(np.int64).reshape(-1))


def _subset(x, y, n: int | None):
    return (x, y) if not n or n >= len(x) else (x[:n], y[:n])


def _split(x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float = 0.2):
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:10]


def _load_npz(path: Path, seed: int):
    with np.load(path) as z:
        names = set(z.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= names:
            return z["x_train"], z["y_train"], z["x_test"], z["y_test"], "x_train/y_train/x_test/y_test"
        if {"x", "y"} <= names:
            return (*_split(z["x"], z["y"], seed), "x/y, seeded 80/20 train/test split")
    raise ValueError(f"{path}: an .npz needs arrays x and y (or x_train, y_train, x_test, y_test); it has {sorted(names)}")


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _load_folder(root: Path, image_size: int, seed: int):
    """root/<class>/*.png, or root/train/<class>/ and root/test/<class>/. Grayscale, resized."""
    from PIL import Image

    def read(dir_: Path, classes: list[str]):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for p in sorted((dir_ / c).iterdir()):
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    img = Image.open(p).convert("L").resize((image_size, image_size))
                    xs.append(np.asarray(img, dtype=np.uint8))
                    ys.append(ci)
        if not xs:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {dir_}")
        return np.stack(xs), np.asarray(ys)

    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        x, y = read(root / "train", classes)
        xt, yt = read(root / "test", classes)
        return x, y, xt, yt, f"image folder train/ + test/, {len(classes)} classes"
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root}: an image folder needs one subfolder per class (or train/ and test/ with those)")
    x, y = read(root, classes)
    return (*_split(x, y, seed), f"image folder, {len(classes)} classes, seeded 80/20 train/test split")


def load_data(dataset: str = "fashion-mnist", data: str | None = None, subset: int | None = None,
              seed: int = 0, image_size: int = 28, pixels: str | None = None) -> Data:
    """Fashion-MNIST (Debian's dataset-fashion-mnist) or the user's .npz / image folder.
    `subset` keeps the first N training and the first N test images; `pixels` ("-1,1" or "0,1",
    default -1,1) is the range 8-bit pixels are mapped to."""
    if subset is not None and subset < 1:
        raise ValueError(f"--subset must be a positive integer, got {subset}")
    if pixels is not None and pixels not in PIXELS:
        raise ValueError(f"--pixels must be 0,1 or -1,1, got '{pixels}'")
    if data:
        path = Path(data)
        if not path.exists():
            raise ValueError(f"--data: no such file or folder {data}")
        if path.is_dir():
            x, y, xt, yt, how = _load_folder(path, image_size, seed)
            key = hashlib.sha1(f"{path.resolve()}:{len(x)}:{len(xt)}".encode()).hexdigest()[:10]
        elif path.suffix == ".npz":
            x, y, xt, yt, how = _load_npz(path, seed)
            key = _file_key(path)
        else:
            raise ValueError(f"--data must be an .npz file or an image folder, got {data}")
        name, source = path.name, f"{path} ({how})"
    else:
        if dataset != "fashion-mnist":
            raise ValueError(f"unknown --dataset '{dataset}' (fashion-mnist, or pass --data)")
        x, y = load_fashion_mnist("train")
        xt, yt = load_fashion_mnist("test")
        name, source, key = "fashion-mnist", "Debian dataset-fashion-mnist", "fashion"
    x, y = _subset(x, y, subset)
    xt, yt = _subset(xt, yt, subset)
    eight_bit = [np.asarray(a).dtype == np.uint8 for a in (x, xt)]
    if any(eight_bit) and not all(eight_bit):
        raise ValueError(f"--data {data}: the train images are {np.asarray(x).dtype} and the test images {np.asarray(xt).dtype}; give both as uint8 pixels or both as floats")
    if not all(eight_bit):
        if pixels is not None:
            raise ValueError(f"--pixels maps 8-bit pixels; --data {data} holds {np.asarray(x).dtype} values, fed as given (drop --pixels)")
        range_ = AS_GIVEN
        key = f"{key}_raw"  # values no longer rescaled: not the same data as an older cache entry
    else:
        range_ = pixels or DEFAULT_PIXELS
        if range_ != DEFAULT_PIXELS:
            key = f"{key}_p{range_.replace(',', '').replace('-', 'm')}"
    xtr, ytr = _tensors(x, y, range_ if range_ in PIXELS else DEFAULT_PIXELS)
    xte, yte = _tensors(xt, yt, range_ if range_ in PIXELS else DEFAULT_PIXELS)
    classes = int(max(int(ytr.max()), int(yte.max())) + 1)
    if subset:
        key = f"{key}_n{subset}"
    return Data(name, source, xtr, ytr, xte, yte, classes, key, pixels=range_)


def cache_dir() -> Path:
    """LUTHAM_CACHE, else ~/.cache/lutham (outside the repository)."""
    return Path(os.environ.get("LUTHAM_CACHE") or Path.home() / ".cache" / "lutham")
