"""efficient-kan and FastKAN layers for the conversion tests, written here from their published
formulas (not imported from LUTHAM and not copied from those projects): the same attribute names,
state-dict keys and shapes as efficient-kan's KANLinear/KAN and FastKAN's FastKANLayer/FastKAN.

efficient-kan edge (o, i): base_weight[o,i] * silu(x_i) + spline_scaler[o,i] * sum_m spline_weight[o,i,m] B_m(x_i),
B_m the order-k B-splines (Cox-de Boor, half-open intervals) on grid (in, G+2k+1).
FastKAN: y = spline_linear(phi(layernorm(x))) + base_linear(silu(x)), phi_m(u) = exp(-((u - c_m)/h)^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def cox_de_boor(x: torch.Tensor, knots: torch.Tensor, k: int) -> torch.Tensor:
    """B_m(x) for x (N, in), knots (in, n) -> (N, in, n-k-1), one recursion level at a time."""
    x = x[..., None]
    b = ((knots[:, :-1] <= x) & (x < knots[:, 1:])).float()
    for p in range(1, k + 1):
        t0, t1 = knots[:, : -(p + 1)], knots[:, p:-1]  # t_m, t_{m+p}
        s0, s1 = knots[:, 1:-p], knots[:, p + 1 :]  # t_{m+1}, t_{m+p+1}
        b = (x - t0) / (t1 - t0) * b[..., :-1] + (s1 - x) / (s1 - s0) * b[..., 1:]
    return b


class EfficientKANLinear(nn.Module):
    def __init__(self, in_features, out_features, grid_size=5, spline_order=3, scale_noise=0.1,
                 enable_standalone_scale_spline=True, base_activation=nn.SiLU, grid_range=(-1, 1)):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = grid_size, spline_order
        h = (grid_range[1] - grid_range[0]) / grid_size
        grid = (torch.arange(-spline_order, grid_size + spline_order + 1) * h + grid_range[0]).expand(in_features, -1).contiguous()
        self.register_buffer("grid", grid)
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, grid_size + spline_order))
        self.enable_standalone_scale_spline = enable_standalone_scale_spline
        if enable_standalone_scale_spline:
            self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.base_activation = base_activation()
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.normal_(self.spline_weight, std=scale_noise)
        if enable_standalone_scale_spline:
            nn.init.uniform_(self.spline_scaler, 0.5, 1.5)

    def scaled_spline_weight(self):
        if self.enable_standalone_scale_spline:
            return self.spline_weight * self.spline_scaler[..., None]
        return self.spline_weight

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, self.in_features)
        base = F.linear(self.base_activation(x), self.base_weight)
        spline = torch.einsum("nim,oim->no", cox_de_boor(x, self.grid, self.spline_order), self.scaled_spline_weight())
        return (base + spline).reshape(*shape[:-1], self.out_features)


class EfficientKAN(nn.Module):
    def __init__(self, widths, grid_size=5, spline_order=3, **kw):
        super().__init__()
        self.layers = nn.ModuleList(EfficientKANLinear(a, b, grid_size, spline_order, **kw) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class RadialBasisFunction(nn.Module):
    def __init__(self, grid_min=-2.0, grid_max=2.0, num_grids=8, denominator=None):
        super().__init__()
        self.grid = nn.Parameter(torch.linspace(grid_min, grid_max, num_grids), requires_grad=False)
        self.denominator = denominator or (grid_max - grid_min) / (num_grids - 1)

    def forward(self, x):
        return torch.exp(-(((x[..., None] - self.grid) / self.denominator) ** 2))


class FastKANLayer(nn.Module):
    def __init__(self, input_dim, output_dim, grid_min=-2.0, grid_max=2.0, num_grids=8, use_base_update=True,
                 base_activation=nn.SiLU, spline_weight_init_scale=0.1):
        super().__init__()
        self.layernorm = nn.LayerNorm(input_dim)
        self.rbf = RadialBasisFunction(grid_min, grid_max, num_grids)
        self.spline_linear = nn.Linear(input_dim * num_grids, output_dim, bias=False)
        nn.init.trunc_normal_(self.spline_linear.weight, std=spline_weight_init_scale)
        self.use_base_update = use_base_update
        if use_base_update:
            self.base_activation = base_activation()
            self.base_linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        phi = self.rbf(self.layernorm(x) if self.layernorm is not None else x)
        y = self.spline_linear(phi.reshape(*phi.shape[:-2], -1))
        if self.use_base_update:
            y = y + self.base_linear(self.base_activation(x))
        return y


class FastKAN(nn.Module):
    def __init__(self, widths, num_grids=8, **kw):
        super().__init__()
        self.layers = nn.ModuleList(FastKANLayer(a, b, num_grids=num_grids, **kw) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class ConvBNKAN(nn.Module):
    """A small conv + BatchNorm backbone with an efficient-kan head: keys `backbone.*`, `head.layers.N.*`."""

    def __init__(self, classes=10, hidden=16, grid_size=5):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(4),
            nn.Flatten(), nn.Tanh(),
        )
        self.head = EfficientKAN([4 * 7 * 7, hidden, classes], grid_size=grid_size)

    def forward(self, x):
        return self.head(self.backbone(x))
