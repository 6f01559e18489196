"""numpy's own reductions over an array fed in pieces, bit for bit.

The compression report (R^2 per codebook, per layer in the payload) was defined by numpy sums
over whole arrays; computing them piece by piece must not change a bit of it, so these
accumulators reproduce numpy's summation order exactly (test_gsb checks them against numpy at
awkward sizes and piece boundaries).
"""

from __future__ import annotations

import numpy as np

# numpy's pairwise summation: ranges of at most this many values are summed by one unrolled
# loop (8 partial sums); longer ranges are split in two (the first half rounded down to a
# multiple of 8) and the halves' sums added (numpy/_core/src/umath/loops_utils.h.src).
_PAIRWISE_BLOCK = 128


def _split(n: int) -> int:
    half = n // 2
    return half - half % 8


class PairwiseSum:
    """np.sum of a contiguous float64 array of `total` values fed in order in pieces of any
    size. numpy sums such an array pairwise in one call, so the tree of that summation is a
    function of `total` alone: the nodes of at most LEAF values are summed by np.sum (the same
    pairwise loop on the same values) and their sums added back up the tree in its order."""

    LEAF = 1 << 15  # >= _PAIRWISE_BLOCK, so every larger node splits as numpy splits it

    def __init__(self, total: int):
        self.total = total
        self.leaves: list[int] = []
        self._plan(total)
        self.sums: list[float] = []
        self.pending: list[np.ndarray] = []
        self.pending_len = 0

    def _plan(self, n: int) -> None:
        if n <= self.LEAF:
            self.leaves.append(n)
            return
        half = _split(n)
        self._plan(half)
        self._plan(n - half)

    def add(self, values: np.ndarray) -> None:
        v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        pos = 0
        while pos < len(v):
            need = self.leaves[len(self.sums)] - self.pending_len
            if not self.pending and len(v) - pos >= need:  # a whole leaf in this piece: no copy
                self.sums.append(float(np.sum(v[pos : pos + need])))
                pos += need
                continue
            take = min(need, len(v) - pos)
            self.pending.append(v[pos : pos + take].copy())
            self.pending_len += take
            pos += take
            if self.pending_len == self.leaves[len(self.sums)]:
                self.sums.append(float(np.sum(np.concatenate(self.pending))))
                self.pending, self.pending_len = [], 0

    def value(self) -> float:
        if self.total == 0:
            return 0.0
        if len(self.sums) != len(self.leaves):
            raise RuntimeError(f"PairwiseSum got {sum(self.leaves[: len(self.sums)]) + self.pending_len} of {self.total} values")
        sums = iter(self.sums)

        def node(n: int) -> float:
            if n <= self.LEAF:
                return next(sums)
            half = _split(n)
            left = node(half)
            return left + node(n - half)

        return node(self.total)


class SlotMeans:
    """np.mean(rows, axis=0) of float32 (n, d) rows fed in order in pieces: numpy adds the
    rows one after another into a float32 accumulator (the reduced axis is the outer loop of a
    C-ordered array) and divides by the count as a float64 intp, cast back to float32."""

    def __init__(self):
        self.acc: np.ndarray | None = None
        self.count = 0

    def add(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if self.acc is None:
            self.acc = np.add.reduce(rows, axis=0)
        else:  # the running sum as the first row: the same additions in the same order
            self.acc = np.add.reduce(np.concatenate([self.acc[None], rows]), axis=0)
        self.count += len(rows)

    def value(self) -> np.ndarray:
        means = self.acc.copy()
        np.true_divide(means, np.intp(self.count), out=means, casting="unsafe", subok=False)
        return means
