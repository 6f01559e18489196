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
from .gsb import Progress, RSquared, gsb_encode, r_squared
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


def choose_codebook(coeffs: np.ndarray, codebooks: dict[str, Quantized], seed: int) -> str:
    """Key of the given codebook that reconstructs a seeded sample of `coeffs` best (R^2); the
    first key wins a tie. Only codebooks whose words have the edges' coefficient count qualify."""
    fitting = [k for k, q in codebooks.items() if q.values.shape[1] == coeffs.shape[1]]
    if not fitting:
        dims = sorted({q.values.shape[1] for q in codebooks.values()})
        raise ValueError(f"no given codebook has {coeffs.shape[1]}-value words (they have {dims})")
    if len(fitting) == 1:
        return fitting[0]
    rng = np.random.default_rng(seed)
    sample = coeffs if len(coeffs) <= CODEBOOK_CHOICE_SAMPLE else coeffs[np.sort(rng.choice(len(coeffs), CODEBOOK_CHOICE_SAMPLE, replace=False))]
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
        edges = sum(m.out_features * m.in_features for _, m in members)
        all_coeffs = np.empty((edges, first.coefficients_per_edge), np.float32)
        start = 0
        with torch.no_grad():
            for _, m in members:
                n = m.out_features * m.in_features
                all_coeffs[start : start + n] = m.scaled_spline_weight().reshape(n, -1).numpy()
                start += n
        size = config.codebook_size
        given = None
        if codebooks:
            key = choose_codebook(all_coeffs, codebooks, config.seed)
            given, size = codebooks[key], len(codebooks[key].values)
            report.reused[group_name] = key
        elif size > edges:
            msg = f"{group_name}: codebook size {size} > {edges} edges, clamped to {edges}"
            warnings.warn(msg)
            report.warnings.append(msg)
            size = edges

        def stage(what, frac, gi=gi):
            if progress:
                progress(f"compress {group_name}: {what}", (gi + frac) / len(groups))

        code = gsb_encode(all_coeffs, size, config.seed, config.codebook_bits, stage, codebook=given)
        k = len(code.codebook.values)
        index_bits = max(1, math.ceil(math.log2(k)))
        words_stored = code.codebook.dequantize()
        group_r2 = RSquared(all_coeffs.mean(axis=0))
        start = 0
        for name, m in members:
            n = m.out_features * m.in_features
            sl = slice(start, start + n)
            start += n
            gains = quantize_rows(code.gains[sl].reshape(m.out_features, m.in_features), config.gain_bits)
            biases = quantize_rows(code.biases[sl].reshape(m.out_features, m.in_features), config.bias_bits)
            base = quantize_rows(m.base_weight.detach().numpy(), config.base_bits)
            approx = biases.dequantize().reshape(-1, 1) + gains.dequantize().reshape(-1, 1) * words_stored[code.indices[sl]]
            group_r2.add(all_coeffs[sl], approx)
            layer_r2 = r_squared(all_coeffs[sl], approx)
            del approx
            layer = SharedKANLinear(
                knots=m.grid.detach().clone(),
                codebook=torch.from_numpy(code.codebook.values.copy()),
                codebook_scales=torch.from_numpy(code.codebook.scales.copy()),
                indices=torch.from_numpy(code.indices[sl].reshape(m.out_features, m.in_features).astype(np.int32)),
                gains=torch.from_numpy(gains.values), gain_scales=torch.from_numpy(gains.scales),
                biases=torch.from_numpy(biases.values), bias_scales=torch.from_numpy(biases.scales),
                base_weight=torch.from_numpy(base.values), base_scales=torch.from_numpy(base.scales),
                spline_order=m.spline_order, codebook_bits=code.codebook.bits, index_bits=index_bits,
                gain_bits=config.gain_bits, bias_bits=config.bias_bits, base_bits=config.base_bits,
                r2=layer_r2, basis_kind=m.basis_kind, rbf_denominator=m.rbf_denominator,
            )
            replace_module(compressed, name, layer)
        del all_coeffs
        report.layers.append(LayerReport(group_name, edges, first.coefficients_per_edge, k, index_bits, code.exact, group_r2.value()))
        stage("done", 1.0)
    assert not any(isinstance(m, nn.Identity) and n in originals for n, m in compressed.named_modules())
    return compressed.eval(), report


def relative_output_error(dense: nn.Module, compressed: nn.Module, inputs: torch.Tensor) -> float:
    """||y_compressed - y_dense|| / ||y_dense|| on the given inputs (PyTorch eager)."""
    with torch.no_grad():
        ref = dense(inputs)
        got = compressed(inputs)
    return float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))
