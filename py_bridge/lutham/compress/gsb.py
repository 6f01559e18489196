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

import time
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

# Above this many codewords, exact k-means (every training shape against every codeword, each
# iteration) costs hours on two cores (K = 65,536: ~90 s per iteration per million shapes), so
# the codebook is trained in two levels instead (faiss.contrib.clustering's scheme): sqrt(K)
# coarse cells, then within each cell exact k-means for its share of the K codewords. Edges are
# then assigned through the coarse cells (an IVF index). Below it nothing changes (same files).
TWO_LEVEL_MIN_CODEBOOK = 4096
# Two-level training set: this many shapes per codeword (a seeded sample), e.g. 2.1M at K = 65,536.
TWO_LEVEL_POINTS_PER_CODEWORD = 32
# Coarse cells searched per edge when assigning against a two-level codebook; measured R^2
# against exact assignment to the same codebook in BENCHMARKS.md.
TWO_LEVEL_PROBES = 2
# The coarse k-means trains on at most this many shapes per cell (faiss.contrib.clustering's choice).
COARSE_POINTS_PER_CELL = 2000


class RateProgress:
    """Reports `done` of `total` items with rate and ETA in the label, at most every few
    seconds (the label is all the CLI prints when stderr is not a terminal)."""

    EVERY_S = 5.0

    def __init__(self, progress: Progress | None, what: str, total: int, unit: str, lo: float = 0.0, hi: float = 1.0):
        self.progress, self.what, self.total, self.unit, self.lo, self.hi = progress, what, total, unit, lo, hi
        self.start = self.last = time.monotonic()
        if progress:
            progress(f"{what} (0/{total} {unit})", lo)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.progress or (now - self.last < self.EVERY_S and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        self.progress(f"{self.what} ({done}/{self.total} {self.unit}, {rate:,.0f}/s, ETA {eta:.0f} s)",
                      self.lo + (self.hi - self.lo) * done / self.total)


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


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _spherical_kmeans(points: np.ndarray, size: int, seed: int, max_points: int = MAX_POINTS_PER_CODEWORD) -> np.ndarray:
    import faiss

    kmeans = faiss.Kmeans(points.shape[1], size, niter=KMEANS_ITERATIONS, seed=seed, spherical=True,
                          max_points_per_centroid=max_points, min_points_per_centroid=1, verbose=False)
    kmeans.train(np.ascontiguousarray(points, dtype=np.float32))
    return _unit_rows(kmeans.centroids)


@dataclass
class TwoLevelCodebook:
    words: np.ndarray  # (K, d) unit codewords, grouped by coarse cell
    coarse: np.ndarray  # (cells, d) unit coarse centroids
    bounds: np.ndarray  # (cells + 1,) cell c's codewords are words[bounds[c]:bounds[c + 1]]


class _OneThread:
    """faiss on one OpenMP thread: the two-level path runs many small k-means and searches,
    where thread start-up and spin-waiting cost more than a second core gives (measured 5x
    slower with 2 threads on the shared 2-core machine); results do not depend on it."""

    def __enter__(self):
        import faiss

        self.threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)

    def __exit__(self, *exc):
        import faiss

        faiss.omp_set_num_threads(self.threads)


def train_two_level(canon: np.ndarray, size: int, seed: int, progress: Progress | None = None) -> TwoLevelCodebook:
    """K codewords in two levels: sqrt(K) coarse cells on a seeded sample of
    TWO_LEVEL_POINTS_PER_CODEWORD * K shapes, then each cell's shapes clustered exactly into
    its share of K (proportional to the shapes it holds). Cost per iteration ~ sample x sqrt(K)."""
    import faiss

    rng = np.random.default_rng(seed)
    wanted = TWO_LEVEL_POINTS_PER_CODEWORD * size
    sample = canon if len(canon) <= wanted else canon[np.sort(rng.choice(len(canon), wanted, replace=False))]
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    cells = int(round(np.sqrt(size)))
    with _OneThread():
        coarse = _spherical_kmeans(sample, cells, seed, max_points=COARSE_POINTS_PER_CELL)
        index = faiss.IndexFlatIP(sample.shape[1])
        index.add(coarse)
        _, cell_of = index.search(sample, 1)
        cell_of = cell_of[:, 0]
        counts = np.bincount(cell_of, minlength=cells)
        # Each cell's share of the K codewords, proportional to its shapes, summing to exactly K.
        cumulative = np.cumsum(counts)
        shares = np.diff(np.concatenate([[0], cumulative * size // cumulative[-1]]))
        order = np.argsort(cell_of, kind="stable")
        starts = np.concatenate([[0], cumulative])
        words, sizes = [], []
        meter = RateProgress(progress, "k-means (two-level)", cells, "cells")
        for c in range(cells):
            members = sample[order[starts[c] : starts[c + 1]]]
            share = int(shares[c])
            if share == 0:
                cell_words = members[:0]
            elif len(members) <= share:  # no more shapes than codewords: the shapes themselves
                cell_words = members
            else:
                cell_words = _spherical_kmeans(members, share, seed + 1 + c)
            words.append(cell_words)
            sizes.append(len(cell_words))
            meter.update(c + 1)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return TwoLevelCodebook(np.ascontiguousarray(np.concatenate(words), dtype=np.float32), coarse, bounds)


# Edges per pass of the two-level assignment (bounds its (edges x probes) temporaries).
TWO_LEVEL_CHUNK_EDGES = 1 << 22


def nearest_codewords_two_level(shapes: np.ndarray, codebook: np.ndarray, two_level: TwoLevelCodebook,
                                progress: Progress | None = None, probes: int = TWO_LEVEL_PROBES) -> np.ndarray:
    """Index of the codeword of largest cosine for each sign-canonical shape among the
    codewords of its `probes` nearest coarse cells (what an IVF index with that nprobe
    finds), searched cell by cell so each search is one matrix product. Only +w is searched:
    canonical shapes and their k-means codewords lie on the same side."""
    import faiss

    d = codebook.shape[1]
    unit = _unit_rows(codebook)
    bounds = two_level.bounds
    cells = len(two_level.coarse)
    probes = min(probes, cells)
    out = np.zeros(len(shapes), dtype=np.int64)
    meter = RateProgress(progress, "assign", len(shapes), "edges")
    with _OneThread():
        coarse_index = faiss.IndexFlatIP(d)
        coarse_index.add(np.ascontiguousarray(two_level.coarse, dtype=np.float32))
        cell_index = []
        for c in range(cells):
            index = faiss.IndexFlatIP(d)
            index.add(unit[bounds[c] : bounds[c + 1]])
            cell_index.append(index)
        for start in range(0, len(shapes), TWO_LEVEL_CHUNK_EDGES):
            part = np.ascontiguousarray(shapes[start : start + TWO_LEVEL_CHUNK_EDGES], dtype=np.float32)
            _, probed = coarse_index.search(part, probes)
            probed = probed.ravel()
            edge_of = np.repeat(np.arange(len(part)), probes)
            order = np.argsort(probed, kind="stable")
            edges_by_cell = np.split(edge_of[order], np.cumsum(np.bincount(probed, minlength=cells))[:-1])
            best_score = np.full(len(part), -np.inf, np.float32)
            best = np.zeros(len(part), np.int64)
            for c, edges in enumerate(edges_by_cell):
                if len(edges) == 0 or cell_index[c].ntotal == 0:
                    continue
                score, found = cell_index[c].search(part[edges], 1)
                better = score[:, 0] > best_score[edges]  # an edge appears once per cell
                best_score[edges[better]] = score[better, 0]
                best[edges[better]] = found[better, 0] + bounds[c]
            out[start : start + len(part)] = best
            meter.update(start + len(part))
    return out


def train_codebook(canon: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """K unit codewords for sign-canonical shapes. When the distinct shapes number <= K the
    codebook is those shapes and the second value maps every shape to its codeword (exact GSB);
    otherwise k-means codewords and None, or (None, None) when K is large enough for
    train_two_level."""
    if len(canon) <= size:  # one codeword per edge: exact, no clustering at all
        return canon.astype(np.float32), np.arange(len(canon), dtype=np.int64)
    found = distinct_shapes(canon, size)
    if found is not None:
        return found
    if size >= TWO_LEVEL_MIN_CODEBOOK:
        return None, None  # the caller trains in two levels (train_two_level)
    return _spherical_kmeans(canon, size, seed), None


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
    meter = RateProgress(progress, "assign", len(shapes), "edges")
    for start in range(0, len(shapes), chunk):
        part = np.ascontiguousarray(shapes[start : start + chunk], dtype=np.float32)
        _, found = index.search(part, 1)
        out[start : start + chunk] = found[:, 0]
        meter.update(min(len(shapes), start + chunk))
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
    two_level = None
    # The caller's fraction: k-means takes the first half, the assignment the second (monotonic).
    half = None if progress is None else (lambda what, frac: progress(what, 0.5 * frac))
    rest = None if progress is None else (lambda what, frac: progress(what, 0.5 + 0.5 * frac))
    if codebook is None:
        if progress:
            progress("kmeans", 0.0)
        words, assignment = train_codebook(shapes, codebook_size, seed)
        if words is None:  # too many distinct shapes for exact k-means at this K
            two_level = train_two_level(shapes, codebook_size, seed, half)
            words = two_level.words
        if progress:
            progress("kmeans", 0.5)
        codebook = quantize_rows(words, codebook_bits)
    elif codebook.values.ndim != 2 or codebook.values.shape[1] != coeffs.shape[1]:
        raise ValueError(f"a codebook of {codebook.values.shape[1]}-value words cannot encode {coeffs.shape[1]} coefficients per edge")
    stored = codebook.dequantize()
    if assignment is not None:
        indices = assignment.astype(np.int64)  # every shape is (up to float noise) a codeword
    elif two_level is not None:
        indices = nearest_codewords_two_level(shapes, stored, two_level, rest)
    else:
        indices = nearest_codewords(shapes, stored, seed, rest)
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
