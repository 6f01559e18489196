"""Gain-Shape-Bias vector quantization (SHARe-KAN) of per-edge coefficient vectors.

Each edge's coefficients c (length d = G + k) are split into
    bias  b = mean(c)
    gain  g, shape s = (c - b) / ||c - b||   (a unit vector)
All shapes of a group of edges share ONE codebook of K unit codewords, found by k-means
(faiss, seeded). Each edge takes the codeword of largest |cosine| with its shape and the
least-squares gain g = <c - b, w> / ||w||^2 against the codeword w as it is stored
(after int8 quantization, if any), so c ~ b + g * w.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .quant import FLOAT_BITS, Quantized, quantize_rows

# Above this many (edges x codewords) the exact nearest-codeword search is replaced by an
# inverted-file index (IVF), which visits only a few codeword lists per edge.
EXACT_SEARCH_LIMIT = 2e10
KMEANS_ITERATIONS = 20
# faiss trains on at most this many shapes per codeword (a seeded sample beyond that).
MAX_POINTS_PER_CODEWORD = 256

Progress = Callable[[str, float], None]


@dataclass
class GSBCode:
    codebook: Quantized  # (K, d) unit shapes as stored
    indices: np.ndarray  # (n,) int64
    gains: np.ndarray  # (n,) float32, least squares against the stored codeword
    biases: np.ndarray  # (n,) float32
    exact: bool  # True when every distinct shape is a codeword (no k-means ran)


def split_gain_shape_bias(coeffs: np.ndarray):
    """c -> (bias, residual norm, unit shape); zero residuals get a zero shape."""
    coeffs = np.ascontiguousarray(coeffs, dtype=np.float32)
    biases = coeffs.mean(axis=1)
    residual = coeffs - biases[:, None]
    norms = np.linalg.norm(residual, axis=1)
    shapes = np.divide(residual, norms[:, None], out=np.zeros_like(residual), where=norms[:, None] > 0)
    return biases, residual, shapes


def canonical_sign(shapes: np.ndarray) -> np.ndarray:
    """Flip each shape so its largest-magnitude entry is positive: s and -s cluster together
    (the signed gain absorbs the flip)."""
    pivot = np.abs(shapes).argmax(axis=1)
    signs = np.sign(shapes[np.arange(len(shapes)), pivot])
    signs[signs == 0] = 1
    return shapes * signs[:, None]


# Unit shapes closer than this (L2) are one distinct shape: float32 rounding in
# c - mean(c) must not split them.
DISTINCT_TOLERANCE = 1e-4


def distinct_shapes(canon: np.ndarray, limit: int, tol: float = DISTINCT_TOLERANCE):
    """(representatives, assignment) of the distinct shapes if there are at most `limit`
    of them, else None. Leader clustering: a shape farther than `tol` from every
    representative so far becomes one; the scan stops as soon as `limit` is exceeded."""
    import faiss

    d = canon.shape[1]
    index = faiss.IndexFlatL2(d)
    leaders: list[np.ndarray] = []
    assignment = np.empty(len(canon), dtype=np.int64)
    chunk = 4096
    for start in range(0, len(canon), chunk):
        part = np.ascontiguousarray(canon[start : start + chunk], dtype=np.float32)
        if index.ntotal:
            dist, found = index.search(part, 1)
            dist, found = dist[:, 0], found[:, 0]
        else:
            dist, found = np.full(len(part), np.inf, np.float32), np.zeros(len(part), np.int64)
        for j in np.flatnonzero(dist > tol * tol):
            # Leaders added within this chunk are not in the index yet: check them directly.
            fresh = np.asarray(leaders[index.ntotal :], dtype=np.float32).reshape(-1, d)
            if len(fresh):
                gaps = ((fresh - part[j]) ** 2).sum(axis=1)
                if gaps.min() <= tol * tol:
                    found[j] = index.ntotal + int(gaps.argmin())
                    continue
            leaders.append(part[j])
            found[j] = len(leaders) - 1
            if len(leaders) > limit:
                return None
        index.add(np.asarray(leaders[index.ntotal :], dtype=np.float32).reshape(-1, d))
        assignment[start : start + len(part)] = found
    return np.asarray(leaders, dtype=np.float32).reshape(-1, d), assignment


def train_codebook(canon: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """K unit codewords for sign-canonical shapes. When the distinct shapes number <= K the
    codebook is those shapes and the second value maps every shape to its codeword (exact GSB);
    otherwise k-means codewords and None."""
    if len(canon) <= size:  # one codeword per edge: exact, no clustering at all
        return canon.astype(np.float32), np.arange(len(canon), dtype=np.int64)
    found = distinct_shapes(canon, size)
    if found is not None:
        return found
    import faiss

    kmeans = faiss.Kmeans(
        canon.shape[1],
        size,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        max_points_per_centroid=MAX_POINTS_PER_CODEWORD,
        min_points_per_centroid=1,  # small layers are fine; don't print faiss's warning
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(canon))
    centroids = kmeans.centroids.astype(np.float32)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return np.divide(centroids, norms, out=np.zeros_like(centroids), where=norms > 0), None


def nearest_codewords(shapes: np.ndarray, codebook: np.ndarray, seed: int, progress: Progress | None = None) -> np.ndarray:
    """Index of the codeword of largest |cosine| for each shape."""
    import faiss

    unit = codebook / np.maximum(np.linalg.norm(codebook, axis=1, keepdims=True), 1e-30)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    d = unit.shape[1]
    # Searching +w and -w together finds the largest |<s, w>| in one pass.
    both = np.ascontiguousarray(np.concatenate([unit, -unit]))
    if len(shapes) * len(both) <= EXACT_SEARCH_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:
        lists = int(4 * np.sqrt(len(both)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(both)
        index.nprobe = 16
    index.add(both)
    out = np.empty(len(shapes), dtype=np.int64)
    chunk = 1 << 18
    for start in range(0, len(shapes), chunk):
        part = np.ascontiguousarray(shapes[start : start + chunk], dtype=np.float32)
        _, found = index.search(part, 1)
        out[start : start + chunk] = found[:, 0]
        if progress:
            progress("assign", min(1.0, (start + chunk) / len(shapes)))
    out[out < 0] = 0  # IVF may find nothing for an all-zero shape: any codeword, gain 0
    return out % len(unit)


# Edges processed at a time by the chunked passes (bounds temporary memory on 50-head models).
CHUNK_EDGES = 1 << 20


def biases_and_canonical_shapes(coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge bias and sign-canonical unit shape, computed in chunks: one (n, d) array."""
    n = len(coeffs)
    biases = np.empty(n, np.float32)
    shapes = np.empty(coeffs.shape, np.float32)
    for start in range(0, n, CHUNK_EDGES):
        sl = slice(start, start + CHUNK_EDGES)
        b, _, s = split_gain_shape_bias(coeffs[sl])
        biases[sl] = b
        shapes[sl] = canonical_sign(s)
    return biases, shapes


def least_squares_gains(coeffs: np.ndarray, biases: np.ndarray, stored: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """g = <c - b, w> / ||w||^2 against each edge's stored codeword w (0 for a zero codeword)."""
    gains = np.zeros(len(coeffs), np.float32)
    energy = np.einsum("kd,kd->k", stored, stored)
    for start in range(0, len(coeffs), CHUNK_EDGES):
        sl = slice(start, start + CHUNK_EDGES)
        w = stored[indices[sl]]
        e = energy[indices[sl]]
        dot = np.einsum("nd,nd->n", coeffs[sl] - biases[sl, None], w)
        gains[sl] = np.divide(dot, e, out=np.zeros(len(w), np.float32), where=e > 0)
    return gains


def gsb_encode(coeffs: np.ndarray, codebook_size: int, seed: int, codebook_bits: int = 8, progress: Progress | None = None,
               codebook: Quantized | None = None) -> GSBCode:
    """Compress (n, d) coefficient vectors with one shared codebook of at most `codebook_size` words,
    or with the given `codebook` (as stored: no k-means; size and bits are then the codebook's)."""
    if coeffs.ndim != 2 or coeffs.shape[0] == 0:
        raise ValueError(f"gsb_encode takes a non-empty (edges, coefficients) matrix, got {coeffs.shape}")
    biases, shapes = biases_and_canonical_shapes(coeffs)
    assignment = None
    if codebook is None:
        if progress:
            progress("kmeans", 0.0)
        words, assignment = train_codebook(shapes, codebook_size, seed)
        if progress:
            progress("kmeans", 1.0)
        codebook = quantize_rows(words, codebook_bits)
    elif codebook.values.ndim != 2 or codebook.values.shape[1] != coeffs.shape[1]:
        raise ValueError(f"a codebook of {codebook.values.shape[1]}-value words cannot encode {coeffs.shape[1]} coefficients per edge")
    stored = codebook.dequantize()
    if assignment is not None:
        indices = assignment.astype(np.int64)  # every shape is (up to float noise) a codeword
    else:
        indices = nearest_codewords(shapes, stored, seed, progress)
    del shapes
    gains = least_squares_gains(coeffs, biases, stored, indices)
    return GSBCode(codebook, indices, gains, biases, assignment is not None)


def reconstruct(code: GSBCode) -> np.ndarray:
    """c_hat = b + g * w[index], (n, d)."""
    w = code.codebook.dequantize()[code.indices]
    return code.biases[:, None] + code.gains[:, None] * w


class RSquared:
    """R^2 accumulated over parts: 1 - SSE / SST, SST about the mean of each coefficient slot
    over all parts (given up front)."""

    def __init__(self, slot_means: np.ndarray):
        self.means = slot_means.astype(np.float64)
        self.sse = 0.0
        self.sst = 0.0

    def add(self, original: np.ndarray, approx: np.ndarray) -> None:
        original = original.astype(np.float64)
        self.sse += float(((original - approx) ** 2).sum())
        self.sst += float(((original - self.means) ** 2).sum())

    def value(self) -> float:
        if self.sst > 0:
            return 1.0 - self.sse / self.sst
        return 1.0 if self.sse == 0 else float("-inf")


def r_squared(original: np.ndarray, approx: np.ndarray) -> float:
    """1 - SSE / SST over all coefficients (SST about the mean of each coefficient slot)."""
    acc = RSquared(original.mean(axis=0))
    acc.add(original, approx)
    return acc.value()
