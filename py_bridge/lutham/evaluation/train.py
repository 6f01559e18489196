"""The two Fashion-MNIST models, seeded training and a checkpoint cache outside git.

- pure KAN: the pixels (784 in [-1, 1]) -> KAN 784 -> 64 -> 10, grid 8, order 3. The KAN
  carries the whole model, so compression differences show; targets are judged on it.
- Vision KAN: a small conv backbone (2 conv layers, tanh features in the grid range) ->
  KAN head 784 -> 64 -> 10 on the 16 x 7 x 7 conv features.

Training: AdamW lr 1e-3, weight decay 1e-4, batch 128, seeded init and shuffling; the same
recipe as examples/fashion_mnist/sweep_bits.py (whose checkpoints it shares).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..files import write_atomic
from ..model.kan import KAN, KANLinear
from ..model.modules import kan_sizes
from .data import Data, cache_dir

GRID = 8
ORDER = 3
HIDDEN = 64
BATCH = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
EPOCHS = {"pure_kan": 4, "vision_kan": 3}
LABELS = {"pure_kan": "pure KAN (pixels -> KAN {w})", "vision_kan": "Vision KAN (conv backbone + KAN head {w})"}

Progress = Callable[[str, float], None]


class PureKAN(KAN):
    """A KAN on the flattened pixels; state-dict keys `layers.{l}.*` like efficient-kan's KAN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(x.shape[0], -1))


class VisionKAN(nn.Module):
    """Conv backbone -> tanh features in the grid range [-1, 1] -> KAN head."""

    def __init__(self, channels: int = 1, image_size: int = 28, classes: int = 10, hidden: int = HIDDEN,
                 grid: int = GRID, order: int = ORDER):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 16, 3, padding=1), nn.MaxPool2d(2), nn.Tanh(), nn.Flatten(),
        )
        features = 16 * (image_size // 4) * (image_size // 4)
        self.head = KAN([features, hidden, classes], grid_size=grid, spline_order=order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build(kind: str, data: Data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    c, h, w = data.x_train.shape[1:]
    if kind == "pure_kan":
        return PureKAN([c * h * w, HIDDEN, data.classes], grid_size=GRID, spline_order=ORDER)
    if kind == "vision_kan":
        if h != w or h % 4:
            raise ValueError(f"the Vision KAN needs square images with a side divisible by 4, got {h}x{w}")
        return VisionKAN(c, h, data.classes)
    raise ValueError(f"unknown model '{kind}' (pure_kan or vision_kan)")


def label(kind: str, model: nn.Module) -> str:
    widths = [m.in_features for m in model.modules() if isinstance(m, KANLinear)]
    last = [m.out_features for m in model.modules() if isinstance(m, KANLinear)][-1:]
    return LABELS.get(kind, kind).format(w=" -> ".join(map(str, widths + last)))


def checkpoint_path(kind: str, data: Data, epochs: int, seed: int) -> Path:
    return cache_dir() / f"{data.key}_{kind}_e{epochs}_s{seed}.pt"


def _save_atomic(state: dict, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def train(kind: str, data: Data, epochs: int | None = None, seed: int = 0, progress: Progress | None = None,
          cache: bool = True) -> tuple[nn.Module, dict]:
    """(trained model in eval mode, info). A cached checkpoint is loaded instead of training."""
    epochs = EPOCHS[kind] if epochs is None else epochs
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    model = build(kind, data, seed)
    path = checkpoint_path(kind, data, epochs, seed)
    info = dict(kind=kind, epochs=epochs, seed=seed, checkpoint=str(path), cached=False, train_seconds=0.0)
    if cache and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        info["cached"] = True
        return model.eval(), info
    x, y = data.x_train, data.y_train
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(seed)
    started = time.time()
    steps = epochs * ((len(x) + BATCH - 1) // BATCH)
    step = 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i : i + BATCH]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if progress and step % 20 == 0:
                progress(f"train {kind}", step / steps)
    info["train_seconds"] = round(time.time() - started, 1)
    info["final_loss"] = float(loss.item())
    if cache:
        try:
            _save_atomic(model.state_dict(), path)
        except OSError as e:  # a read-only HOME, a full disk: the run goes on without the cache
            info["cache_note"] = (f"ran without the checkpoint cache: cannot write {path.parent} ({e.strerror}); "
                                  "set LUTHAM_CACHE to a writable folder")
    return model.eval(), info


def _kan_dims(state: dict, prefix: str) -> tuple[list[int], int, int]:
    """Widths, grid size and order of the KAN whose keys start with `prefix` (efficient-kan layout)."""
    sizes = kan_sizes(state, prefix)
    if sizes is None:
        raise ValueError(f"no chain of KAN layers under {prefix}")
    return sizes


def load_checkpoint(path: str, data: Data, weights: str | None = None, trust_pickle: bool = False) -> tuple[nn.Module, str]:
    """A user's model: a pickled nn.Module (any KAN format, converted), a torch.export .pt2, a
    factory `my_net.py:build` with `weights` (a state dict under any key prefix), or a state dict
    of the pure KAN (`layers.*`, or efficient-kan layers under another prefix) or of the Vision
    KAN (`backbone.*` + `head.layers.*`). Returns (model in eval mode, kind)."""
    from ..model.load import FACTORY, kan_state, torch_load, user_model

    if weights or FACTORY.match(path) or path.endswith(".pt2"):
        model, _ = user_model(path, weights, [1, *data.x_test.shape[1:]], flag="--checkpoint", trust_pickle=trust_pickle)
        return model, "checkpoint"
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--checkpoint: no such file {path}")
    obj = torch_load(p, "--checkpoint", trust_pickle)
    if isinstance(obj, nn.Module):
        from ..model.convert import ConversionError, convert

        try:
            return convert(obj), "checkpoint"
        except ConversionError as e:
            raise ValueError(f"checkpoint {path}: {e}") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path}: expected a state dict or an nn.Module, got {type(obj).__name__}")
    keys = list(obj)
    try:
        if keys and all(k.startswith("layers.") for k in keys):
            widths, grid, order = _kan_dims(obj, "layers.")
            model, kind = PureKAN(widths, grid_size=grid, spline_order=order), "pure_kan"
        elif any(k.startswith("backbone.") for k in keys) and any(k.startswith("head.layers.") for k in keys):
            widths, grid, order = _kan_dims(obj, "head.layers.")
            c, h, _ = data.x_train.shape[1:]
            model, kind = VisionKAN(c, h, widths[-1], widths[1], grid, order), "vision_kan"
        elif kan_state(obj) is not None:  # efficient-kan layers under another prefix, e.g. `head.layers.*`
            widths, grid, order, obj = kan_state(obj)
            model, kind = PureKAN(widths, grid_size=grid, spline_order=order), "pure_kan"
        else:
            raise ValueError(f"unrecognised keys (e.g. {keys[:3]}); for another model pass its code: "
                             f"--checkpoint my_net.py:build --weights {path}")
        model.load_state_dict(obj)
    except (ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
        raise ValueError(f"checkpoint {path} is neither a pure KAN nor a Vision KAN state dict: {first}") from None
    return model.eval(), kind
