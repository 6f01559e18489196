"""The coefficient vectors of a group of edges that share a codebook, read in parts.

A 50-head group is 52M edges: its (edges, G+k) float32 matrix alone is 2.5 GB, so the
compression passes never build it; they ask for the rows they work on (a range, or the rows of
a training sample) and the layers compute those products again. Row e of a group is edge
(o, i) = divmod(e - offset, in) of its layer, layers one after another.
"""

from __future__ import annotations

import numpy as np

from ..model.kan import KANLinear


class ArrayEdges:
    """Edges given as one (n, d) matrix (samples, tests): rows are views of it."""

    def __init__(self, coeffs: np.ndarray):
        self.coeffs = coeffs
        self.n, self.d = coeffs.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.coeffs[start:stop]

    def gather(self, index: np.ndarray) -> np.ndarray:
        return self.coeffs[index]


class LayerEdges:
    """The edges of KAN layers one after another: c = spline_weight * spline_scaler (float32),
    computed for the rows asked for. The products are KANLinear.scaled_spline_weight's, taken
    in numpy on views of the parameters (one float multiply each, so the same bits; torch's
    two threads were 8x slower on the loaded 2-core machine)."""

    def __init__(self, layers: list[KANLinear]):
        self.layers = layers
        self.d = layers[0].coefficients_per_edge
        # (out, in, d) and (out, in) views, no copies
        self.weights = [m.spline_weight.detach().numpy() for m in layers]
        self.scalers = [m.spline_scaler.detach().numpy() for m in layers]
        sizes = [m.out_features * m.in_features for m in layers]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])

    def layer_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of one layer (its own edge numbers), float32 (stop - start, d)."""
        inp = self.layers[layer].in_features
        first, last = start // inp, -(-stop // inp)
        block = self.weights[layer][first:last] * self.scalers[layer][first:last, :, None]
        skip = start - first * inp
        return np.asarray(block.reshape(-1, self.d)[skip : skip + stop - start], dtype=np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Group rows start..stop, float32 (stop - start, d)."""
        layer = int(np.searchsorted(self.offsets, start, side="right")) - 1
        parts = []
        while start < stop:
            end = min(stop, int(self.offsets[layer + 1]))
            if end > start:
                parts.append(self.layer_rows(layer, start - int(self.offsets[layer]), end - int(self.offsets[layer])))
            start = end
            layer += 1
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty((0, self.d), np.float32)

    def gather(self, index: np.ndarray) -> np.ndarray:
        """The rows at the given group rows (any order), float32 (len(index), d)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.d), np.float32)
        layer_of = np.searchsorted(self.offsets, index, side="right") - 1
        for layer in np.unique(layer_of):
            picked = np.flatnonzero(layer_of == layer)
            o, i = np.divmod(index[picked] - self.offsets[layer], self.layers[layer].in_features)
            out[picked] = self.weights[layer][o, i] * self.scalers[layer][o, i, None]
        return out
