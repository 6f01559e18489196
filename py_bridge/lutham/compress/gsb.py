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

from .edges import ArrayEdges
from .quant import FLOAT_BITS, Quantized, quantize_rows

# Above this many (edges x codewords) the exact nearest-codeword search is replaced by an
# inverted-file index (IVF), which visits only a few codeword lists per edge.
EXACT_SEARCH_LIMIT = 2e10
KMEANS_ITERATIONS = 20
# faiss trains on at most this many shapes per codeword (a seeded sample beyond that).
MAX_POINTS_PER_CODEWORD = 256
# k-means with at most this many (training shapes x codewords) runs on one faiss thread (as do
# all assignment searches): its iterations are too short to gain from a second thread, and on
# the shared 2-core machine OpenMP's waiting made them 10-20x slower (K = 128: 3 s -> 0.1 s).
# faiss's k-means and searches give the same bits on any number of threads.
ONE_THREAD_KMEANS_WORK = 1 << 30

Progress = Callable[[str, float], None]

# From this many codewords on (K >= 4096), exact k-means (every training shape against every codeword, each
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
    biases = edge_biases(coeffs)
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


def canonical_shapes(coeffs: np.ndarray) -> np.ndarray:
    """The sign-canonical unit shape of each row (a function of that row alone, so any rows can
    be recomputed in any grouping with the same bits)."""
    _, _, shapes = split_gain_shape_bias(coeffs)
    return canonical_sign(shapes)


def edge_biases(coeffs: np.ndarray) -> np.ndarray:
    """The bias b = mean(c) of each row, as split_gain_shape_bias computes it."""
    return np.ascontiguousarray(coeffs, dtype=np.float32).mean(axis=1)


# Rows per piece of the per-edge passes (coefficients, shapes, gains, quantization, R^2): every
# per-edge result is a function of its own row, so this bounds their temporaries (a few MB,
# cache-sized) without changing a bit (test_gsb forces tiny pieces and compares).
CHUNK_EDGES = 1 << 16


def _pieces(start: int, stop: int, size: int | None = None):
    size = size or CHUNK_EDGES
    for a in range(start, stop, size):
        yield a, min(stop, a + size)


def shapes_of(edges, start: int, stop: int) -> np.ndarray:
    """Canonical shapes of group rows start..stop, computed in pieces."""
    out = np.empty((stop - start, edges.d), np.float32)
    for a, b in _pieces(start, stop):
        out[a - start : b - start] = canonical_shapes(edges.rows(a, b))
    return out


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


# Unit shapes closer than this (L2) are one distinct shape: float32 rounding in
# c - mean(c) must not split them.
DISTINCT_TOLERANCE = 1e-4
# Shapes per search of the distinct-shape scan (its leaders are indexed between searches).
DISTINCT_BATCH = 4096


class DistinctScan:
    """The distinct shapes if there are at most `limit` of them. Leader clustering over shapes
    fed in order: a shape farther than `tol` from every representative so far becomes one; the
    scan fails as soon as `limit` is exceeded. Shapes are searched in DISTINCT_BATCH batches
    counted from the first shape, whatever pieces they are fed in."""

    def __init__(self, limit: int, d: int, tol: float = DISTINCT_TOLERANCE):
        import faiss

        self.limit, self.d, self.tol = limit, d, tol
        self.index = faiss.IndexFlatL2(d)
        self.leaders: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        # leaders <= limit <= 65,536 when the scan succeeds: 2 bytes per edge
        self.kind = np.uint16 if limit <= 1 << 16 else np.int64
        self.assigned: list[np.ndarray] = []
        self.failed = False

    def feed(self, shapes: np.ndarray) -> bool:
        """Scan these shapes (the next ones in order); False once there are too many distinct."""
        pos = 0
        while not self.failed and pos < len(shapes):
            take = min(DISTINCT_BATCH - self.pending_len, len(shapes) - pos)
            self.pending.append(shapes[pos : pos + take])
            self.pending_len += take
            pos += take
            if self.pending_len == DISTINCT_BATCH:
                self._batch()
        return not self.failed

    def finish(self):
        """(representatives, assignment) of every shape fed, or None if the scan failed."""
        if self.pending_len and not self.failed:
            self._batch()
        if self.failed:
            return None
        assignment = np.concatenate(self.assigned) if self.assigned else np.empty(0, self.kind)
        self.assigned = []
        return np.asarray(self.leaders, dtype=np.float32).reshape(-1, self.d), assignment

    def _batch(self) -> None:
        part = np.ascontiguousarray(np.concatenate(self.pending), dtype=np.float32)
        self.pending, self.pending_len = [], 0
        index, leaders, d, tol = self.index, self.leaders, self.d, self.tol
        if index.ntotal:
            with _OneThread():
                dist, found = index.search(part, 1)
            dist, found = dist[:, 0], found[:, 0]
        else:
            dist, found = np.full(len(part), np.inf, np.float32), np.zeros(len(part), np.int64)
        for j in np.flatnonzero(dist > tol * tol):
            # Leaders added within this batch are not in the index yet: check them directly.
            fresh = np.asarray(leaders[index.ntotal :], dtype=np.float32).reshape(-1, d)
            if len(fresh):
                gaps = ((fresh - part[j]) ** 2).sum(axis=1)
                if gaps.min() <= tol * tol:
                    found[j] = index.ntotal + int(gaps.argmin())
                    continue
            leaders.append(part[j])
            found[j] = len(leaders) - 1
            if len(leaders) > self.limit:
                self.failed = True
                self.assigned = []
                return
        index.add(np.asarray(leaders[index.ntotal :], dtype=np.float32).reshape(-1, d))
        self.assigned.append(found.astype(self.kind))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def faiss_training_rows(n: int, size: int, seed: int, max_points: int = MAX_POINTS_PER_CODEWORD) -> np.ndarray | None:
    """The rows (in order) faiss's k-means trains on when given n points for `size` centroids:
    all of them (None) up to size * max_points, else the first size * max_points of faiss's
    rand_perm(n, seed) (faiss/impl/ClusteringHelpers.cpp, subsample_training_set: a
    Fisher-Yates shuffle whose first m positions are final after m steps). Passing faiss those
    rows gives the same centroids as passing it all n points, without holding them."""
    import faiss

    wanted = size * max_points
    if n <= wanted:
        return None
    rng = faiss.RandomGenerator(seed)
    moved: dict[int, int] = {}
    rows = np.empty(wanted, np.int64)
    for i in range(wanted):
        j = i + rng.rand_int(n - i)
        at_i = moved.get(i, i)
        rows[i] = moved.get(j, j)
        moved[j] = at_i
    return rows


def _spherical_kmeans(points: np.ndarray, size: int, seed: int, max_points: int = MAX_POINTS_PER_CODEWORD) -> np.ndarray:
    import faiss

    kmeans = faiss.Kmeans(points.shape[1], size, niter=KMEANS_ITERATIONS, seed=seed, spherical=True,
                          max_points_per_centroid=max_points, min_points_per_centroid=1, verbose=False)
    points = np.ascontiguousarray(points, dtype=np.float32)
    if min(len(points), size * max_points) * size <= ONE_THREAD_KMEANS_WORK:
        with _OneThread():
            kmeans.train(points)
    else:
        kmeans.train(points)
    return _unit_rows(kmeans.centroids)


@dataclass
class TwoLevelCodebook:
    words: np.ndarray  # (K, d) unit codewords, grouped by coarse cell
    coarse: np.ndarray  # (cells, d) unit coarse centroids
    bounds: np.ndarray  # (cells + 1,) cell c's codewords are words[bounds[c]:bounds[c + 1]]


def two_level_sample_rows(n: int, size: int, seed: int) -> np.ndarray | None:
    """The rows (sorted) train_two_level trains on: a seeded sample of
    TWO_LEVEL_POINTS_PER_CODEWORD * K rows, or all of them (None)."""
    wanted = TWO_LEVEL_POINTS_PER_CODEWORD * size
    if n <= wanted:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, wanted, replace=False))


def train_two_level(sample: np.ndarray, size: int, seed: int, progress: Progress | None = None) -> TwoLevelCodebook:
    """K codewords in two levels from the canonical shapes of two_level_sample_rows: sqrt(K)
    coarse cells, then each cell's shapes clustered exactly into its share of K (proportional
    to the shapes it holds). Cost per iteration ~ sample x sqrt(K)."""
    import faiss

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


# Edges per search against a two-level codebook (bounds its (edges x probes) temporaries).
TWO_LEVEL_CHUNK_EDGES = 1 << 22


class TwoLevelSearch:
    """Index of the codeword of largest cosine for each sign-canonical shape among the
    codewords of its `probes` nearest coarse cells (what an IVF index with that nprobe
    finds), searched cell by cell so each search is one matrix product. Only +w is searched:
    canonical shapes and their k-means codewords lie on the same side."""

    batch = TWO_LEVEL_CHUNK_EDGES

    def __init__(self, codebook: np.ndarray, two_level: TwoLevelCodebook, probes: int = TWO_LEVEL_PROBES):
        import faiss

        d = codebook.shape[1]
        unit = _unit_rows(codebook)
        self.bounds = bounds = two_level.bounds
        self.cells = cells = len(two_level.coarse)
        self.probes = min(probes, cells)
        self.coarse_index = faiss.IndexFlatIP(d)
        self.coarse_index.add(np.ascontiguousarray(two_level.coarse, dtype=np.float32))
        self.cell_index = []
        for c in range(cells):
            index = faiss.IndexFlatIP(d)
            index.add(unit[bounds[c] : bounds[c + 1]])
            self.cell_index.append(index)

    def search(self, part: np.ndarray) -> np.ndarray:
        probes, cells, bounds = self.probes, self.cells, self.bounds
        with _OneThread():
            part = np.ascontiguousarray(part, dtype=np.float32)
            _, probed = self.coarse_index.search(part, probes)
            probed = probed.ravel()
            edge_of = np.repeat(np.arange(len(part)), probes)
            order = np.argsort(probed, kind="stable")
            edges_by_cell = np.split(edge_of[order], np.cumsum(np.bincount(probed, minlength=cells))[:-1])
            best_score = np.full(len(part), -np.inf, np.float32)
            best = np.zeros(len(part), np.int64)
            for c, edges in enumerate(edges_by_cell):
                if len(edges) == 0 or self.cell_index[c].ntotal == 0:
                    continue
                score, found = self.cell_index[c].search(part[edges], 1)
                better = score[:, 0] > best_score[edges]  # an edge appears once per cell
                best_score[edges[better]] = score[better, 0]
                best[edges[better]] = found[better, 0] + bounds[c]
        return best


class CodewordSearch:
    """Index of the codeword of largest |cosine| for each shape: exact, or through an
    inverted-file index above EXACT_SEARCH_LIMIT (edges x codewords)."""

    batch = 1 << 18  # shapes per faiss search

    def __init__(self, codebook: np.ndarray, seed: int, edges: int):
        import faiss

        unit = codebook / np.maximum(np.linalg.norm(codebook, axis=1, keepdims=True), 1e-30)
        unit = np.ascontiguousarray(unit, dtype=np.float32)
        d = unit.shape[1]
        self.words = len(unit)
        # Searching +w and -w together finds the largest |<s, w>| in one pass.
        both = np.ascontiguousarray(np.concatenate([unit, -unit]))
        if edges * len(both) <= EXACT_SEARCH_LIMIT:
            index = faiss.IndexFlatIP(d)
        else:
            lists = int(4 * np.sqrt(len(both)))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(both)
            index.nprobe = 16
            self.quantizer = quantizer  # the IVF index does not own it
        index.add(both)
        self.index = index

    def search(self, part: np.ndarray) -> np.ndarray:
        with _OneThread():
            _, found = self.index.search(np.ascontiguousarray(part, dtype=np.float32), 1)
        found = found[:, 0]
        found[found < 0] = 0  # IVF may find nothing for an all-zero shape: any codeword, gain 0
        return found % self.words


def train_codebook(edges, size: int, seed: int, progress: Progress | None = None):
    """(K unit codewords, assignment, two-level codebook) for the sign-canonical shapes of
    `edges`. When the distinct shapes number <= K the codebook is those shapes and the
    assignment maps every edge to its codeword (exact GSB, no k-means); otherwise k-means
    codewords (two-level when K >= TWO_LEVEL_MIN_CODEBOOK) and no assignment. Only the rows
    k-means trains on are ever held."""
    n = edges.n
    if n <= size:  # one codeword per edge: exact, no clustering at all
        return shapes_of(edges, 0, n), np.arange(n, dtype=np.int64), None
    scan = DistinctScan(size, edges.d)
    # Usually over within the first few thousand shapes; all of them when the shapes do repeat.
    meter = RateProgress(progress, "distinct shapes", n, "edges", hi=0.0)
    for a, b in _pieces(0, n):
        if not scan.feed(canonical_shapes(edges.rows(a, b))):
            break
        meter.update(b)
    found = scan.finish()
    if found is not None:
        return found[0], found[1], None
    if size >= TWO_LEVEL_MIN_CODEBOOK:
        rows = two_level_sample_rows(n, size, seed)
        two_level = train_two_level(shapes_at(edges, rows), size, seed, progress)
        return two_level.words, None, two_level
    return _spherical_kmeans(shapes_at(edges, faiss_training_rows(n, size, seed)), size, seed), None, None


def shapes_at(edges, rows: np.ndarray | None) -> np.ndarray:
    """Canonical shapes of the given rows in that order (all rows for None)."""
    if rows is None:
        return shapes_of(edges, 0, edges.n)
    out = np.empty((len(rows), edges.d), np.float32)
    for a, b in _pieces(0, len(rows)):
        out[a:b] = canonical_shapes(edges.gather(rows[a:b]))
    return out


def edge_gains(coeffs: np.ndarray, biases: np.ndarray, stored: np.ndarray, energy: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """g = <c - b, w> / ||w||^2 against each edge's stored codeword w (0 for a zero codeword);
    energy = ||w||^2 of every stored codeword."""
    w = stored[indices]
    e = energy[indices]
    dot = np.einsum("nd,nd->n", coeffs - biases[:, None], w)
    return np.divide(dot, e, out=np.zeros(len(w), np.float32), where=e > 0)


class Encoder:
    """The GSB encoding of a group of edges (ArrayEdges, LayerEdges), streamed: building it
    trains the codebook (or takes the given one, as stored: no k-means), assign() then hands
    out each row's codeword index in order. Progress: the training reports the first half of
    the caller's fraction, the assignment the second (monotonic)."""

    def __init__(self, edges, codebook_size: int, seed: int, codebook_bits: int = 8, progress: Progress | None = None,
                 codebook: Quantized | None = None):
        self.edges, self.seed, self.progress = edges, seed, progress
        half = None if progress is None else (lambda what, frac: progress(what, 0.5 * frac))
        self.assignment = self.two_level = None
        if codebook is None:
            if progress:
                progress("kmeans", 0.0)
            words, self.assignment, self.two_level = train_codebook(edges, codebook_size, seed, half)
            if progress:
                progress("kmeans", 0.5)
            codebook = quantize_rows(words, codebook_bits)
        elif codebook.values.ndim != 2 or codebook.values.shape[1] != edges.d:
            raise ValueError(f"a codebook of {codebook.values.shape[1]}-value words cannot encode {edges.d} coefficients per edge")
        self.codebook = codebook
        self.exact = self.assignment is not None  # every distinct shape is a codeword
        self.stored = codebook.dequantize()
        self.energy = np.einsum("kd,kd->k", self.stored, self.stored)

    def gains(self, coeffs: np.ndarray, biases: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Least-squares gains of these rows against their stored codewords."""
        return edge_gains(coeffs, biases, self.stored, self.energy, indices)

    def assign(self, assigned: Callable[[int, np.ndarray], None]) -> None:
        """Calls assigned(start, indices) for consecutive rows from 0 to edges.n, in order."""
        n = self.edges.n
        rest = None if self.progress is None else (lambda what, frac: self.progress(what, 0.5 + 0.5 * frac))
        if self.exact:
            search, batch = None, CHUNK_EDGES
        elif self.two_level is not None:
            search = TwoLevelSearch(self.stored, self.two_level)
            batch = search.batch
        else:
            search = CodewordSearch(self.stored, self.seed, n)
            batch = search.batch
        meter = RateProgress(rest, "assign", n, "edges")
        # Searches take fixed batches counted from row 0: the same faiss calls as when the
        # whole shape matrix was searched batch by batch.
        for a, b in _pieces(0, n, batch):
            if search is None:
                indices = self.assignment[a:b].astype(np.int64)
            else:
                indices = search.search(shapes_of(self.edges, a, b))
            assigned(a, indices)
            meter.update(b)
        self.assignment = None


def gsb_encode(coeffs: np.ndarray, codebook_size: int, seed: int, codebook_bits: int = 8, progress: Progress | None = None,
               codebook: Quantized | None = None) -> GSBCode:
    """Compress (n, d) coefficient vectors with one shared codebook of at most `codebook_size` words,
    or with the given `codebook` (as stored: no k-means; size and bits are then the codebook's)."""
    if coeffs.ndim != 2 or coeffs.shape[0] == 0:
        raise ValueError(f"gsb_encode takes a non-empty (edges, coefficients) matrix, got {coeffs.shape}")
    edges = ArrayEdges(coeffs)
    encoder = Encoder(edges, codebook_size, seed, codebook_bits, progress, codebook)
    n = len(coeffs)
    indices, gains, biases = np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.float32)

    def assigned(start: int, found: np.ndarray) -> None:
        indices[start : start + len(found)] = found
        for a, b in _pieces(start, start + len(found)):
            rows = edges.rows(a, b)
            biases[a:b] = edge_biases(rows)
            gains[a:b] = encoder.gains(rows, biases[a:b], indices[a:b])

    encoder.assign(assigned)
    return GSBCode(encoder.codebook, indices, gains, biases, encoder.exact)


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
        self.add_sums(float(((original - approx) ** 2).sum()), float(((original - self.means) ** 2).sum()))

    def add_sums(self, sse: float, sst: float) -> None:
        """A part given by its sums (as add computes them: reductions.PairwiseSum)."""
        self.sse += sse
        self.sst += sst

    def value(self) -> float:
        if self.sst > 0:
            return 1.0 - self.sse / self.sst
        return 1.0 if self.sse == 0 else float("-inf")


def r_squared(original: np.ndarray, approx: np.ndarray) -> float:
    """1 - SSE / SST over all coefficients (SST about the mean of each coefficient slot)."""
    acc = RSquared(original.mean(axis=0))
    acc.add(original, approx)
    return acc.value()
