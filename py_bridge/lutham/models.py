"""Dense models: an optional torchvision backbone with N KAN heads on its pooled features.

No pretrained weights can be downloaded offline, so backbones start from a seeded init
unless the user passes a checkpoint (`weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .kan import KAN

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


def build_model(config: ModelConfig) -> MultiHeadKAN:
    config.validate()
    torch.manual_seed(config.seed)
    model = MultiHeadKAN(config)
    if config.weights:
        state = torch.load(config.weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            first = str(err).strip().splitlines()[-1].strip()
            raise ValueError(f"checkpoint {config.weights} does not fit this model: {first}") from None
        if unexpected or (missing and len(missing) == len(model.state_dict())):
            raise ValueError(
                f"checkpoint {config.weights} does not fit this model (missing {len(missing)}, unexpected {len(unexpected)} keys, e.g. {(unexpected or missing)[:3]})"
            )
    return model.eval()
