"""A KAN layer in efficient-kan's layout, state-dict compatible with its `KANLinear`.

Buffers/parameters: grid (in, G+2k+1), base_weight (out, in), spline_weight (out, in, G+k),
spline_scaler (out, in). Edge (o, i) computes
    base_weight[o,i] * silu(x_i) + spline_scaler[o,i] * sum_m spline_weight[o,i,m] * B_m(x_i).

The same layer with basis_kind RBF is FastKAN's: `grid` holds G Gaussian centers per input,
spline_order is 0 and B_m(x) = exp(-((x - c_m) / h)^2) with h = rbf_denominator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def uniform_knots(in_features: int, grid_size: int, spline_order: int, grid_range=(-1.0, 1.0)) -> torch.Tensor:
    """efficient-kan's extended uniform grid: G intervals on the range plus k knots each side."""
    lo, hi = grid_range
    step = (hi - lo) / grid_size
    knots = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float32) * step + lo
    return knots.expand(in_features, -1).contiguous()


def b_splines(x: torch.Tensor, knots: torch.Tensor, spline_order: int) -> torch.Tensor:
    """B-spline bases by Cox-de Boor: x (N, in), knots (in, G+2k+1) -> (N, in, G+k).

    Intervals are half-open, so outside the extended grid every basis is 0.
    """
    x = x.unsqueeze(-1)
    bases = ((x >= knots[:, :-1]) & (x < knots[:, 1:])).to(x.dtype)
    for p in range(1, spline_order + 1):
        left = (x - knots[:, : -(p + 1)]) / (knots[:, p:-1] - knots[:, : -(p + 1)])
        right = (knots[:, p + 1 :] - x) / (knots[:, p + 1 :] - knots[:, 1:-p])
        bases = left * bases[..., :-1] + right * bases[..., 1:]
    return bases


# Basis kinds, the numbering of lutham::kan_linear's `basis_kind` argument.
BSPLINE = 0
RBF = 1


def rbf_bases(x: torch.Tensor, centers: torch.Tensor, denominator: float) -> torch.Tensor:
    """FastKAN's Gaussian bases: x (N, in), centers (in, G) -> (N, in, G), all G non-zero."""
    return torch.exp(-(((x.unsqueeze(-1) - centers) / denominator) ** 2))


def basis(x: torch.Tensor, knots: torch.Tensor, spline_order: int, basis_kind: int = BSPLINE,
          rbf_denominator: float = 0.0) -> torch.Tensor:
    """The basis values every KAN layer here multiplies its coefficients with: (N, in, d)."""
    if basis_kind == BSPLINE:
        return b_splines(x, knots, spline_order)
    if basis_kind == RBF:
        return rbf_bases(x, knots, rbf_denominator)
    raise ValueError(f"unknown basis kind {basis_kind} (0 = B-spline, 1 = Gaussian RBF)")


def kan_forward(x: torch.Tensor, knots: torch.Tensor, spline_order: int, basis_kind: int = BSPLINE,
                rbf_denominator: float = 0.0, *, base_weight: torch.Tensor | None = None,
                coefficients: torch.Tensor | None = None, edge_scale: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, folded: torch.Tensor | None = None) -> torch.Tensor:
    """The KAN layer, the one forward every KAN-shaped module here calls: x (..., in) -> (..., out),
        y_o = sum_i base_weight[o,i] silu(x_i) + sum_i sum_m c[o,i,m] B_m(x_i)  (+ sum_i bias[o,i] sum_m B_m(x_i))
    with c = coefficients (out, in, d), times edge_scale[o,i] when given (efficient-kan's
    spline_scaler, SHARe-KAN's gain); bias is SHARe-KAN's per-edge bias.

    Or `folded` (out, in * (1 + d)) = [base_weight | c]: the same sums as ONE matmul of
    [silu(x), B(x)], the plain linear layer XNNPACK takes (exporter/int8_baseline.py).
    The ops run in the order of the exported graphs (dense.pte's bytes depend on it).
    """
    lead = x.shape[:-1]
    x = x.reshape(-1, knots.shape[0])
    if folded is not None:
        bases = basis(x, knots, spline_order, basis_kind, rbf_denominator).reshape(x.shape[0], -1)
        return F.linear(torch.cat([F.silu(x), bases], dim=-1), folded).reshape(*lead, folded.shape[0])
    out_features = base_weight.shape[0]
    y = F.linear(F.silu(x), base_weight)
    bases = basis(x, knots, spline_order, basis_kind, rbf_denominator)
    flat = bases.reshape(x.shape[0], -1)
    if edge_scale is not None:
        coefficients = coefficients * edge_scale.unsqueeze(-1)
    y = y + F.linear(flat, coefficients.reshape(out_features, -1))
    if bias is not None:
        y = y + F.linear(bases.sum(-1), bias)
    return y.reshape(*lead, out_features)


class LuthamKANLayer(nn.Module):
    """Base of LUTHAM's own KAN layers (KANLinear here, compress.layer.SharedKANLinear):
    lutham.convert keeps them as they are."""


class KANLinear(LuthamKANLayer):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        scale_noise: float = 0.1,
        scale_base: float = 1.0,
        scale_spline: float = 1.0,
        grid_range=(-1.0, 1.0),
        basis_kind: int = BSPLINE,
        rbf_denominator: float = 0.0,
    ):
        """basis_kind RBF: grid_size Gaussian centers spread evenly over grid_range (FastKAN's
        grid), spline_order must be 0, rbf_denominator defaults to the center spacing."""
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.scale_noise = scale_noise
        self.scale_base = scale_base
        self.scale_spline = scale_spline
        self.basis_kind = int(basis_kind)
        self.rbf_denominator = float(rbf_denominator)
        if self.basis_kind == RBF:
            if spline_order != 0 or grid_size < 2:
                raise ValueError(f"an RBF KAN layer needs spline_order 0 and at least 2 centers, got {spline_order}, {grid_size}")
            lo, hi = grid_range
            self.rbf_denominator = self.rbf_denominator or (hi - lo) / (grid_size - 1)
            centers = torch.linspace(lo, hi, grid_size).expand(in_features, -1).contiguous()
            self.register_buffer("grid", centers)
        else:
            self.register_buffer("grid", uniform_knots(in_features, grid_size, spline_order, grid_range))
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, grid_size + spline_order))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    @property
    def coefficients_per_edge(self) -> int:
        return self.grid_size + self.spline_order

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """efficient-kan's initialisation: Kaiming base weights and splines fitted to small noise.

        Draws come from torch's global generator: seed it for reproducible models.
        """
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * self.scale_base)
        if self.basis_kind == RBF:  # FastKAN's init: small normal spline weights, unit scalers
            nn.init.trunc_normal_(self.spline_weight, mean=0.0, std=self.scale_noise)
            nn.init.ones_(self.spline_scaler)
            return
        # Fit each edge's spline to noise sampled at the G+1 grid points inside the range.
        k = self.spline_order
        points = self.grid[:, k:-k].T.contiguous()  # (G+1, in)
        noise = (torch.rand(self.grid_size + 1, self.in_features, self.out_features) - 0.5) * self.scale_noise / self.grid_size
        self.spline_weight.copy_(self.scale_spline * self._fit_coefficients(points, noise))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * self.scale_spline)

    def _fit_coefficients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Least-squares spline coefficients through (x, y): x (N, in), y (N, in, out) -> (out, in, G+k).

        The systems are underdetermined (G+1 points, G+k unknowns): the minimum-norm solution.
        When every input has the same knots and points (the usual uniform grid) one
        pseudo-inverse serves all inputs and outputs, instead of `in` separate solves.
        """
        design = b_splines(x, self.grid, self.spline_order).transpose(0, 1)  # (in, N, G+k)
        if bool((design == design[:1]).all()):
            coeffs = torch.linalg.pinv(design[0]) @ y.reshape(y.shape[0], -1)  # (G+k, in*out)
            return coeffs.reshape(-1, self.in_features, self.out_features).permute(2, 1, 0).contiguous()
        solution = torch.linalg.lstsq(design, y.transpose(0, 1)).solution  # (in, G+k, out)
        return solution.permute(2, 0, 1).contiguous()

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) -> (N, in, G+k) basis values of this layer's kind."""
        return basis(x, self.grid, self.spline_order, self.basis_kind, self.rbf_denominator)

    def scaled_spline_weight(self) -> torch.Tensor:
        """Each edge's effective coefficient vector c = spline_weight * spline_scaler, (out, in, G+k)."""
        return self.spline_weight * self.spline_scaler.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kan_forward(x, self.grid, self.spline_order, self.basis_kind, self.rbf_denominator,
                           base_weight=self.base_weight, coefficients=self.spline_weight, edge_scale=self.spline_scaler)


class KAN(nn.Module):
    """A stack of KANLinear layers; state-dict keys `layers.{l}.*` as in efficient-kan's KAN."""

    def __init__(self, widths, grid_size: int = 5, spline_order: int = 3, grid_range=(-1.0, 1.0)):
        super().__init__()
        self.layers = nn.ModuleList(
            KANLinear(a, b, grid_size=grid_size, spline_order=spline_order, grid_range=grid_range)
            for a, b in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
