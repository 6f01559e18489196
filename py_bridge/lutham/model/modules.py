"""Module plumbing shared by every stage: swapping a submodule by name, and the sizes of a chain
of efficient-kan layers read from a state dict."""

from __future__ import annotations

import torch
from torch import nn


def replace_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    """Puts `new` where the submodule named `dotted` (e.g. "heads.0.layers.1") sits in `root`."""
    parent, _, child = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def kan_sizes(state: dict[str, torch.Tensor], prefix: str) -> tuple[list[int], int, int] | None:
    """(widths, grid size, spline order) of the efficient-kan layers `<prefix><l>.grid`,
    `.base_weight`, `.spline_weight` (l = 0, 1, ...) in a state dict; None when there are none,
    a layer lacks its grid or spline weight, the widths do not chain or grid and order differ
    between layers."""
    widths: list[int] = []
    grid = order = None
    l = 0
    while f"{prefix}{l}.base_weight" in state:
        out_f, in_f = state[f"{prefix}{l}.base_weight"].shape
        spline, knots = state.get(f"{prefix}{l}.spline_weight"), state.get(f"{prefix}{l}.grid")
        if spline is None or knots is None or (widths and widths[-1] != in_f):
            return None
        d, n_knots = spline.shape[-1], knots.shape[-1]
        if widths and (grid, order) != (d - (n_knots - d - 1), n_knots - d - 1):
            return None  # one grid size and order for the whole chain
        widths += [int(in_f)] * (not widths) + [int(out_f)]
        order, grid = n_knots - d - 1, d - (n_knots - d - 1)
        l += 1
    return (widths, grid, order) if widths else None
