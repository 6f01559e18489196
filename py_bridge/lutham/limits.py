"""What the LUTHAM runtime accepts in a payload, the limits export checks before writing one.

The C++ runtime (delegate/runtime/payload.cpp, kan_kernel.h) refuses anything beyond these; the
Python runtime loads that same library. test/python/test_export_limits.py reads the C++ constants
and fails if they and this file ever differ, so this is the one definition the Python side uses.
"""

from __future__ import annotations

MAX_FEATURES = 1 << 24  # in_features and out_features of one layer
MAX_EDGES = 1 << 34  # in_features * out_features
MAX_GRID_SIZE = 1 << 16  # grid intervals G (RBF: centers)
MAX_SPLINE_ORDER = 15  # B-spline order k
MAX_CODEBOOK_SIZE = 1 << 16  # codewords K (16-bit indices)


def layer_problem(in_features: int, out_features: int, grid_size: int, spline_order: int,
                  codebook_size: int | None = None) -> str | None:
    """Why the runtime would refuse a layer of this shape (the flag's words), or None."""
    if not 1 <= in_features <= MAX_FEATURES or not 1 <= out_features <= MAX_FEATURES:
        return f"has {in_features} -> {out_features} features; the runtime takes 1..{MAX_FEATURES} per side"
    if in_features * out_features > MAX_EDGES:
        return f"has {in_features * out_features} edges; the runtime takes at most {MAX_EDGES} per layer"
    if not 1 <= grid_size <= MAX_GRID_SIZE:
        return f"has grid size {grid_size}; the runtime takes 1..{MAX_GRID_SIZE}"
    if not 0 <= spline_order <= MAX_SPLINE_ORDER:
        return f"has spline order {spline_order}; the runtime takes at most {MAX_SPLINE_ORDER}"
    if codebook_size is not None and not 1 <= codebook_size <= MAX_CODEBOOK_SIZE:
        return f"has codebook size {codebook_size}; the runtime takes 1..{MAX_CODEBOOK_SIZE}"
    return None


def check_layer(where: str, in_features: int, out_features: int, grid_size: int, spline_order: int,
                codebook_size: int | None = None) -> None:
    problem = layer_problem(in_features, out_features, grid_size, spline_order, codebook_size)
    if problem:
        raise ValueError(f"{where} {problem}, so its .pte could not run; nothing was written")
