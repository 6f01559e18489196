"""`export --methods`: which methods lutham.pte holds.

- "forward" (the default): one method, the whole model (today's file, byte for byte).
- "per-head": `backbone` (image -> pooled features), `head_0` .. `head_{N-1}` (features -> that
  head's logits, (batch, outputs)) and `forward` (everything, the same outputs as the
  single-method file), lowered together into one program. Nothing is stored twice: the
  codebooks are named data under content keys and the backbone's XNNPACK weights named data
  under their SHA-256, both shared by every method; ExecuTorch's serializer writes identical
  delegate payloads (head_k's layers are forward's) to one segment.

With `--backbone none` there is no `backbone` method: the heads read the program's input
itself, and an identity method would only copy it. Each method is traced through a small
module that keeps the model's attribute names (`backbone.*`, `heads.<k>.*`), so its nodes have
the same module paths as in forward: the backbone still goes to XNNPACK, and the ETRecord
names head_3's layers `heads.3.layers.0`, as in forward.
"""

from __future__ import annotations

import torch
from torch import nn

METHOD_CHOICES = ("forward", "per-head")
FORWARD = "forward"
BACKBONE = "backbone"


def head_method(index: int) -> str:
    return f"head_{index}"


class _BackboneMethod(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class _HeadMethod(nn.Module):
    """Only head `index` (registered as heads.<index>): the others' weights stay out of the graph."""

    def __init__(self, head: nn.Module, index: int):
        super().__init__()
        self.name = str(index)
        self.heads = nn.Module()
        self.heads.add_module(self.name, head)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return getattr(self.heads, self.name)(features)


def check_methods(methods: str, user_model: bool) -> None:
    if methods not in METHOD_CHOICES:
        raise ValueError(f"--methods must be one of {', '.join(METHOD_CHOICES)}, got '{methods}'")
    if methods == "per-head" and user_model:
        raise ValueError("--methods per-head needs the built backbone + heads model (--backbone/--heads); "
                         "a --model has no heads LUTHAM can tell apart")


def method_modules(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """{method: (module, example input)} of a per-head program, in the order the report lists them."""
    backbone = getattr(model, "backbone", None)
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleList):
        raise ValueError("--methods per-head needs a model with a heads ModuleList (the built backbone + heads model)")
    methods: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    features = example
    if backbone is not None:
        methods[BACKBONE] = (_BackboneMethod(backbone), example)
        with torch.no_grad():  # only its shape matters: the heads are traced on it
            features = backbone(example).detach().contiguous()
    for k, head in enumerate(heads):
        methods[head_method(k)] = (_HeadMethod(head, k), features)
    methods[FORWARD] = (model, example)
    return methods


def method_names(model: nn.Module) -> list[str]:
    """The methods of a per-head program of `model`, in report order (backbone, head_0.., forward)."""
    names = [BACKBONE] if getattr(model, "backbone", None) is not None else []
    return names + [head_method(k) for k in range(len(model.heads))] + [FORWARD]
