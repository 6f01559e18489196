"""SHARe-KAN applied to a model: every KANLinear becomes a SharedKANLinear.

Scope "heads": layer l of every head shares one codebook (many heads, one copy).
Scope "layer": each layer of each head has its own codebook.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..limits import MAX_CODEBOOK_SIZE
from ..model.kan import KANLinear
from ..model.modules import replace_module
from .layer import SharedKANLinear
from .edges import LayerEdges
from . import gsb
from .gsb import Encoder, Progress, RateProgress, RSquared, edge_biases, gsb_encode, r_squared
from .reductions import PairwiseSum, SlotMeans
from .quant import FLOAT_BITS, Quantized, quantize_rows

# Edges (a seeded sample of the group) on which given codebooks are compared to pick one.
CODEBOOK_CHOICE_SAMPLE = 20_000


@dataclass
class CompressionConfig:
    """Defaults chosen by measurement (BENCHMARKS.md, examples/fashion_mnist/sweep_bits.py):
    on the Fashion-MNIST pure KAN, K=128 with 6-bit gains, 4-bit biases and 5-bit base
    weights (22 bits per edge with the 7-bit index) lost 0.06 points against 0.13 for
    all-int8 at K=256 (32 bits); 4-bit base weights or 3-bit biases cost 0.2-1 point."""

    codebook_size: int = 128
    scope: str = "heads"  # "heads" | "layer"
    codebook_bits: int = 8
    gain_bits: int = 6
    bias_bits: int = 4
    base_bits: int = 5
    seed: int = 0

    @staticmethod
    def fp32(**kw) -> "CompressionConfig":
        return CompressionConfig(codebook_bits=32, gain_bits=32, bias_bits=32, base_bits=32, **kw)

    def validate(self) -> None:
        if not 1 <= self.codebook_size <= MAX_CODEBOOK_SIZE:
            raise ValueError(f"--codebook-size must be 1..{MAX_CODEBOOK_SIZE}, got {self.codebook_size}")
        if self.scope not in ("heads", "layer"):
            raise ValueError(f"--codebook-scope must be 'heads' or 'layer', got '{self.scope}'")
        for name in ("codebook_bits", "gain_bits", "bias_bits", "base_bits"):
            bits = getattr(self, name)
            if bits != FLOAT_BITS and not 2 <= bits <= 8:
                raise ValueError(f"{name.replace('_', '-')} must be 2..8 or 32, got {bits}")


@dataclass
class LayerReport:
    name: str  # e.g. "layers.0" with scope heads, "heads.3.layers.0" with scope layer
    edges: int
    coefficients_per_edge: int
    codebook_size: int
    index_bits: int
    exact: bool
    r2: float


@dataclass
class CompressionReport:
    layers: list[LayerReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)  # group -> key of the given codebook it uses

    def to_dict(self) -> dict:
        out = {"layers": [vars(l) for l in self.layers], "warnings": list(self.warnings)}
        if self.reused:
            out["codebooks_reused"] = dict(self.reused)
        return out


def choose_codebook(edges, codebooks: dict[str, Quantized], seed: int) -> str:
    """Key of the given codebook that reconstructs a seeded sample of the edges (ArrayEdges,
    LayerEdges) best (R^2); the first key wins a tie. Only codebooks whose words have the
    edges' coefficient count qualify."""
    fitting = [k for k, q in codebooks.items() if q.values.shape[1] == edges.d]
    if not fitting:
        dims = sorted({q.values.shape[1] for q in codebooks.values()})
        raise ValueError(f"no given codebook has {edges.d}-value words (they have {dims})")
    if len(fitting) == 1:
        return fitting[0]
    rng = np.random.default_rng(seed)
    sample = (edges.rows(0, edges.n) if edges.n <= CODEBOOK_CHOICE_SAMPLE
              else edges.gather(np.sort(rng.choice(edges.n, CODEBOOK_CHOICE_SAMPLE, replace=False))))
    def fit(key: str) -> float:
        code = gsb_encode(sample, 0, seed, codebook=codebooks[key])
        stored = code.codebook.dequantize()
        return r_squared(sample, code.biases[:, None] + code.gains[:, None] * stored[code.indices])
    scores = {k: fit(k) for k in fitting}
    return max(fitting, key=lambda k: (scores[k], -fitting.index(k)))


def _kan_groups(model: nn.Module, scope: str) -> list[tuple[str, list[tuple[str, KANLinear]]]]:
    """Groups of (module name, KANLinear) that share a codebook, in a fixed order."""
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, KANLinear)]
    if not named:
        raise ValueError("the model has no KANLinear layers to compress")
    if scope == "layer":
        return [(n, [(n, m)]) for n, m in named]
    groups: dict[str, list] = {}
    for n, m in named:
        # heads.<h>.layers.<l> -> layers.<l>; anything else keeps its own name.
        parts = n.split(".")
        key = ".".join(parts[2:]) if len(parts) > 2 and parts[0] == "heads" and parts[1].isdigit() else n
        groups.setdefault(key, []).append((n, m))
    return list(groups.items())


class _LayerWriter:
    """One KAN layer of a group, finished row by row as the group's codeword indices arrive:
    its gains and biases are computed again from its coefficients (a function of each row) and
    quantized per row, its R^2 sums accumulated in numpy's order, so no (edges, d) matrix of
    the group is ever held."""

    def __init__(self, name: str, m: KANLinear, edges: LayerEdges, layer: int, encoder: Encoder, config: CompressionConfig,
                 group_means: np.ndarray, layer_means: np.ndarray):
        self.name, self.m, self.edges, self.layer, self.encoder, self.config = name, m, edges, layer, encoder, config
        out, inp = m.out_features, m.in_features
        self.n = out * inp
        self.indices = np.empty((out, inp), np.int32)
        self.known = 0  # edges whose index has arrived
        self.rows_done = 0
        kind = lambda bits: np.float32 if bits == FLOAT_BITS else np.int8
        self.gains = np.empty((out, inp), kind(config.gain_bits))
        self.biases = np.empty((out, inp), kind(config.bias_bits))
        self.gain_scales = np.empty(out, np.float32)
        self.bias_scales = np.empty(out, np.float32)
        self.group_means = group_means.astype(np.float64)
        self.layer_means = layer_means.astype(np.float64)
        values = self.n * edges.d  # r_squared's sums run over the layer's (edges, d) arrays
        self.sse, self.sst_group, self.sst_layer = PairwiseSum(values), PairwiseSum(values), PairwiseSum(values)

    def take(self, start: int, indices: np.ndarray) -> None:
        """Indices of this layer's edges start.. (its own numbering), the next ones in order."""
        self.indices.reshape(-1)[start : start + len(indices)] = indices
        self.known = start + len(indices)
        inp = self.m.in_features
        complete = self.known // inp
        rows = max(1, gsb.CHUNK_EDGES // inp)
        while self.rows_done < complete:
            r0, r1 = self.rows_done, min(complete, self.rows_done + rows)
            self._rows(r0, r1)
            self.rows_done = r1

    def _rows(self, r0: int, r1: int) -> None:
        inp, config, encoder = self.m.in_features, self.config, self.encoder
        coeffs = self.edges.layer_rows(self.layer, r0 * inp, r1 * inp)
        indices = self.indices[r0:r1].reshape(-1)
        biases = edge_biases(coeffs)
        gains = quantize_rows(encoder.gains(coeffs, biases, indices).reshape(-1, inp), config.gain_bits)
        biases = quantize_rows(biases.reshape(-1, inp), config.bias_bits)
        self.gains[r0:r1], self.gain_scales[r0:r1] = gains.values, gains.scales
        self.biases[r0:r1], self.bias_scales[r0:r1] = biases.values, biases.scales
        approx = biases.dequantize().reshape(-1, 1) + gains.dequantize().reshape(-1, 1) * encoder.stored[indices]
        original = coeffs.astype(np.float64)
        self.sse.add((original - approx) ** 2)
        self.sst_group.add((original - self.group_means) ** 2)
        self.sst_layer.add((original - self.layer_means) ** 2)

    @property
    def done(self) -> bool:
        return self.rows_done == self.m.out_features

    def finish(self, k: int, index_bits: int, group_r2: RSquared) -> SharedKANLinear:
        """The compressed layer; adds this layer's sums to its group's R^2."""
        m, config, codebook = self.m, self.config, self.encoder.codebook
        sse = self.sse.value()
        group_r2.add_sums(sse, self.sst_group.value())
        layer_r2 = RSquared(self.layer_means)
        layer_r2.add_sums(sse, self.sst_layer.value())
        base = quantize_rows(m.base_weight.detach().numpy(), config.base_bits)
        return SharedKANLinear(
            knots=m.grid.detach().clone(),
            codebook=torch.from_numpy(codebook.values.copy()),
            codebook_scales=torch.from_numpy(codebook.scales.copy()),
            indices=torch.from_numpy(self.indices),
            gains=torch.from_numpy(self.gains), gain_scales=torch.from_numpy(self.gain_scales),
            biases=torch.from_numpy(self.biases), bias_scales=torch.from_numpy(self.bias_scales),
            base_weight=torch.from_numpy(base.values), base_scales=torch.from_numpy(base.scales),
            spline_order=m.spline_order, codebook_bits=codebook.bits, index_bits=index_bits,
            gain_bits=config.gain_bits, bias_bits=config.bias_bits, base_bits=config.base_bits,
            r2=layer_r2.value(), basis_kind=m.basis_kind, rbf_denominator=m.rbf_denominator,
        )


def _slot_means(edges: LayerEdges, progress: Progress | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """np.mean(axis=0) of the group's coefficient matrix and of each layer's part, in one pass."""
    group = SlotMeans()
    layers = []
    meter = RateProgress(progress, "coefficient means", edges.n, "edges")
    for layer in range(len(edges.layers)):
        means = SlotMeans()
        offset, size = int(edges.offsets[layer]), int(edges.offsets[layer + 1] - edges.offsets[layer])
        for a in range(0, size, gsb.CHUNK_EDGES):
            rows = edges.layer_rows(layer, a, min(size, a + gsb.CHUNK_EDGES))
            group.add(rows)
            means.add(rows)
            meter.update(offset + a + len(rows))
        layers.append(means.value())
    return group.value(), layers


# Share of a group's progress the coefficient means take (the codebook and assignment the rest).
_MEANS_SHARE = 0.1


def compress_model(model: nn.Module, config: CompressionConfig, progress: Progress | None = None,
                   codebooks: dict[str, Quantized] | None = None):
    """Returns (compressed copy of the model, CompressionReport). The input model is untouched.

    codebooks: reuse these ({key: codebook as stored}) instead of training new ones: each
    group takes the one that fits it best (choose_codebook), so programs exported against the
    same codebooks share them (one .ptd). config's codebook size and bits are then unused."""
    config.validate()
    report = CompressionReport()
    # Copy everything but the dense KAN layers (tens of GB for 50 big heads): each is
    # replaced by its SharedKANLinear below.
    kan_layers = [m for m in model.modules() if isinstance(m, KANLinear)]
    compressed = copy.deepcopy(model, memo={id(m): nn.Identity() for m in kan_layers})
    originals = dict((n, m) for n, m in model.named_modules() if isinstance(m, KANLinear))
    groups = _kan_groups(model, config.scope)
    for gi, (group_name, members) in enumerate(groups):
        first = members[0][1]
        for _, m in members:
            if (m.grid_size, m.spline_order, m.basis_kind) != (first.grid_size, first.spline_order, first.basis_kind):
                raise ValueError(f"layers sharing a codebook ({group_name}) must have the same grid, order and basis kind")
        edges = LayerEdges([m for _, m in members])
        size = config.codebook_size
        given = None
        if codebooks:
            key = choose_codebook(edges, codebooks, config.seed)
            given, size = codebooks[key], len(codebooks[key].values)
            report.reused[group_name] = key
        elif size > edges.n:
            msg = f"{group_name}: codebook size {size} > {edges.n} edges, clamped to {edges.n}"
            warnings.warn(msg)
            report.warnings.append(msg)
            size = edges.n

        def stage(what, frac, gi=gi, lo=0.0, hi=1.0):
            if progress:
                progress(f"compress {group_name}: {what}", (gi + lo + (hi - lo) * frac) / len(groups))

        group_means, layer_means = _slot_means(edges, lambda what, frac: stage(what, frac, hi=_MEANS_SHARE))
        encoder = Encoder(edges, size, config.seed, config.codebook_bits,
                          lambda what, frac: stage(what, frac, lo=_MEANS_SHARE), codebook=given)
        k = len(encoder.codebook.values)
        index_bits = max(1, math.ceil(math.log2(k)))
        group_r2 = RSquared(group_means)
        writers = [_LayerWriter(name, m, edges, i, encoder, config, group_means, layer_means[i]) for i, (name, m) in enumerate(members)]
        pending = list(range(len(writers)))  # layers not finished yet, in order

        def assigned(start: int, indices: np.ndarray) -> None:
            stop = start + len(indices)
            while pending:
                i = pending[0]
                lo, hi = int(edges.offsets[i]), int(edges.offsets[i + 1])
                a, b = max(start, lo), min(stop, hi)
                if a < b:
                    writers[i].take(a - lo, indices[a - start : b - start])
                if not writers[i].done:
                    return
                replace_module(compressed, writers[i].name, writers[i].finish(k, index_bits, group_r2))
                writers[i] = None
                pending.pop(0)

        encoder.assign(assigned)
        assert not pending
        report.layers.append(LayerReport(group_name, edges.n, first.coefficients_per_edge, k, index_bits, encoder.exact, group_r2.value()))
        stage("done", 1.0)
    assert not any(isinstance(m, nn.Identity) and n in originals for n, m in compressed.named_modules())
    return compressed.eval(), report


def relative_output_error(dense: nn.Module, compressed: nn.Module, inputs: torch.Tensor) -> float:
    """||y_compressed - y_dense|| / ||y_dense|| on the given inputs (PyTorch eager)."""
    with torch.no_grad():
        ref = dense(inputs)
        got = compressed(inputs)
    return float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))
