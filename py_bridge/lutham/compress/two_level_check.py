"""What assigning edges through the two-level codebook's coarse cells costs in R^2.

Above TWO_LEVEL_MIN_CODEBOOK codewords gsb_encode assigns each edge among the codewords of its
TWO_LEVEL_PROBES nearest coarse cells (an IVF search), not among all K. This measures that
shortcut on a seeded sample of edges: the same codebook (trained and stored exactly as
gsb_encode does), the sample assigned both ways, gains refit by least squares, R^2 of each.
"""

from __future__ import annotations

import time

import numpy as np

from .edges import ArrayEdges
from .gsb import (TWO_LEVEL_PROBES, TwoLevelSearch, shapes_at, _unit_rows, canonical_shapes, edge_biases, edge_gains, r_squared,
                  train_two_level, two_level_sample_rows)
from .quant import quantize_rows


def exact_nearest_codewords(shapes: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Index of the codeword of largest |cosine| among ALL of them, for each shape (flat search)."""
    import faiss

    unit = _unit_rows(stored)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(np.ascontiguousarray(np.concatenate([unit, -unit]), dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(shapes, dtype=np.float32), 1)
    return found[:, 0] % len(unit)


def two_level_cost(coeffs: np.ndarray, codebook_size: int, seed: int, sample_edges: int, codebook_bits: int = 8,
                   probes: tuple[int, ...] = (TWO_LEVEL_PROBES,), progress=None) -> dict:
    """R^2 of a seeded sample of `sample_edges` edges of (n, d) `coeffs`, assigned exactly and
    through each number of probed coarse cells in `probes` (export uses TWO_LEVEL_PROBES), to
    the same two-level codebook of `codebook_size` words trained on all of them."""
    edges = ArrayEdges(coeffs)
    two_level = train_two_level(shapes_at(edges, two_level_sample_rows(edges.n, codebook_size, seed)), codebook_size, seed, progress)
    stored = quantize_rows(two_level.words, codebook_bits).dequantize()
    energy = np.einsum("kd,kd->k", stored, stored)
    rng = np.random.default_rng(seed + 1)
    pick = np.sort(rng.choice(len(coeffs), min(sample_edges, len(coeffs)), replace=False))
    sample = coeffs[pick]
    sample_biases, sample_shapes = edge_biases(sample), canonical_shapes(sample)
    result = {"edges": len(coeffs), "sample_edges": len(pick), "codebook_size": len(stored)}

    def r2(indices: np.ndarray) -> float:
        gains = edge_gains(sample, sample_biases, stored, energy, indices)
        return r_squared(sample, sample_biases[:, None] + gains[:, None] * stored[indices])

    exact = exact_nearest_codewords(sample_shapes, stored)
    result["r2_exact"] = r2(exact)
    result["probes"] = []
    for p in probes:
        started = time.monotonic()
        found = TwoLevelSearch(stored, two_level, probes=p).search(sample_shapes)
        seconds = time.monotonic() - started
        value = r2(found)
        result["probes"].append({"probes": p, "r2": value, "r2_cost": result["r2_exact"] - value,
                                 "same_codeword": float(np.mean(found == exact)),
                                 "assign_edges_per_second": len(pick) / max(seconds, 1e-9)})
    return result
