"""Dense models: an optional torchvision backbone with N KAN heads on its pooled features.

No pretrained weights can be downloaded offline, so backbones start from a seeded init
unless the user passes a checkpoint (`weights`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from .kan import KAN
from ..limits import check_layer

# Feature width of each backbone's pooled output, and the input the model expects.
BACKBONES = {
    "resnet50": 2048,
    "resnet18": 512,
    "mobilenet_v3_small": 576,
    "none": None,
}

# One dense head ~ the paper's 58.67 MB: 2048 -> 512 -> 25 at grid 9, order 3 has
# 2048*512 + 512*25 = 1,061,376 edges x (12 coefficients + scaler + base) x 4 B = 59.4 MB.
DEFAULT_HIDDEN = 512
DEFAULT_OUTPUTS = 25
DEFAULT_GRID = 9
DEFAULT_ORDER = 3
NONE_BACKBONE_FEATURES = 2048


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    heads: int = 1
    widths: list[int] | None = None  # full widths including the input; default from the backbone
    grid: int = DEFAULT_GRID
    order: int = DEFAULT_ORDER
    seed: int = 0
    weights: str | None = None
    batch: int = 1
    image_size: int = 224
    allow_partial: bool = False  # accept a checkpoint that leaves some tensors at the seeded init

    def head_widths(self) -> list[int]:
        if self.widths:
            return list(self.widths)
        features = BACKBONES[self.backbone] or NONE_BACKBONE_FEATURES
        return [features, DEFAULT_HIDDEN, DEFAULT_OUTPUTS]

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{self.backbone}' (choose from {', '.join(BACKBONES)})")
        if self.heads < 1:
            raise ValueError(f"--heads must be at least 1, got {self.heads}")
        widths = self.head_widths()
        if len(widths) < 2 or any(w < 1 for w in widths):
            raise ValueError(f"--widths needs at least two positive widths, got {widths}")
        features = BACKBONES[self.backbone]
        if features is not None and widths[0] != features:
            raise ValueError(f"--widths must start with {features}, the width of {self.backbone}'s features, got {widths[0]}")
        if self.grid < 1 or self.order < 1:
            raise ValueError(f"--grid and --order must be positive, got grid {self.grid}, order {self.order}")
        for i, (a, b) in enumerate(zip(widths, widths[1:])):  # what the runtime would refuse, before any work
            check_layer(f"--widths/--grid/--order: head layer {i} ({a} -> {b})", a, b, self.grid, self.order)
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")

    def example_input(self) -> torch.Tensor:
        """Seeded example input of the model's shape (also what export traces with)."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        if self.backbone == "none":
            # Features spread over the grid range so every spline interval is exercised.
            return torch.rand(self.batch, self.head_widths()[0], generator=gen) * 2.2 - 1.1
        return torch.randn(self.batch, 3, self.image_size, self.image_size, generator=gen)


def make_backbone(name: str) -> nn.Module | None:
    if name == "none":
        return None
    import torchvision.models as tvm

    net = getattr(tvm, name)(weights=None)
    if name.startswith("resnet"):
        net.fc = nn.Identity()
    else:  # mobilenet_v3_small: keep features + pooling, drop the classifier
        net.classifier = nn.Identity()
    return net


class MultiHeadKAN(nn.Module):
    """backbone (optional) -> pooled features -> N KAN heads; output (batch, heads, outputs)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = config.head_widths()
        self.backbone = make_backbone(config.backbone)
        self.heads = nn.ModuleList(KAN(widths, grid_size=config.grid, spline_order=config.order) for _ in range(config.heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x) if self.backbone is not None else x
        return torch.stack([head(features) for head in self.heads], dim=1)


# Peak memory of an export over the dense model's float32 bytes (measured: 50 heads without a
# backbone, 2.97 GB dense, 9.8 GB peak RSS; see README "What the main command costs").
EXPORT_PEAK_FACTOR = 3.5


def dense_model_bytes(config: ModelConfig) -> int:
    """float32 bytes of the model's KAN heads (backbones are < 100 MB and left out)."""
    w = config.head_widths()
    coefficients = config.grid + config.order
    per_head = sum(a * b * (coefficients + 2) + a * (config.grid + 2 * config.order + 1) for a, b in zip(w, w[1:]))
    return 4 * config.heads * per_head


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


# Initialising a layer fits its spline coefficients through G+1 points per input: a design matrix
# of in x (G+1) x (G+2k+1) float32 and its pseudo-inverse, ~6 such arrays at the peak (measured:
# 0.8 GB over the baseline for 2 inputs at G=4096, 3.2 GB for 8). It grows with G squared, the
# rest of the export (compress, trace, lower) with G.
INIT_PEAK_ARRAYS = 6


def export_memory_bytes(config: ModelConfig) -> int:
    """Peak memory of every stage of the export: the layer init (one layer at a time, the model
    already built beside it) or the stages after it, whichever is larger."""
    dense = dense_model_bytes(config)
    w, g, k = config.head_widths(), config.grid, config.order
    init = max(INIT_PEAK_ARRAYS * 4 * a * (g + 1) * (g + 2 * k + 1) for a in w[:-1])
    return max(dense * EXPORT_PEAK_FACTOR, dense + init)


def check_memory(config: ModelConfig) -> None:
    """Refuses a model whose export cannot fit in this machine's memory, saying how much it needs."""
    need = export_memory_bytes(config)
    have = _memory_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"{config.heads} head(s) of widths {','.join(map(str, config.head_widths()))} are "
            f"{dense_model_bytes(config) / 1e9:,.1f} GB of float32 weights; exporting them needs about "
            f"{need / 1e9:,.1f} GB of memory, this machine has {have / 1e9:,.1f} GB"
        )


def _load_checkpoint(path: str) -> dict:
    """The state dict in `path`, or a ValueError naming the file and what is wrong with it."""
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"--weights {path} is empty (0 bytes), not a PyTorch checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for garbage: EOFError, UnpicklingError, IndexError...
        from .load import pickle_refusal, torch_error

        refusal = pickle_refusal(err, f"--weights {path}")
        if refusal:  # a state dict never needs code; torch's text would advise the unsafe reload
            raise ValueError(f"{refusal}: it was not loaded; save model.state_dict() instead") from None
        why = torch_error(err)
        raise ValueError(f"--weights {path} is not a readable PyTorch checkpoint (torch.save of a state dict): {why[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"--weights {path} holds a {type(state).__name__}, not a state dict (names -> tensors)")
    return state


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_finite(model: nn.Module, source: str) -> None:
    """Refuses NaN/Inf in any parameter or buffer: they would poison the codebook and every output."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{source}: {name} has {bad} non-finite value(s) (NaN or Inf) of {t.numel()}; fix the checkpoint")


def build_model(config: ModelConfig) -> MultiHeadKAN:
    config.validate()
    torch.manual_seed(config.seed)
    model = MultiHeadKAN(config)
    if config.weights:
        state = _load_checkpoint(config.weights)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            first = str(err).strip().splitlines()[-1].strip()
            raise ValueError(f"checkpoint {config.weights} does not fit this model: {first}") from None
        if unexpected or (missing and len(missing) == len(model.state_dict())):
            raise ValueError(
                f"checkpoint {config.weights} does not fit this model (missing {len(missing)}, unexpected {len(unexpected)} keys, e.g. {(unexpected or missing)[:3]})"
            )
        if missing and not config.allow_partial:
            raise ValueError(
                f"checkpoint {config.weights} lacks {len(missing)} of the model's {len(model.state_dict())} tensors "
                f"({_names(missing)}); pass --allow-partial to keep the seeded init for those"
            )
        check_finite(model, f"checkpoint {config.weights}")
    return model.eval()
