"""lutham::kan_linear: a compressed KAN layer kept as ONE graph node.

The op carries everything the payload needs as explicit tensors and ints, so
LuthamBackend.preprocess is a pure function of the exported graph. Its eager kernel is
the PyTorch reference of the runtime's math (it expands coefficients for clarity; the C++
runtime never does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .compress.quant import FLOAT_BITS
from .kan import BSPLINE, basis


def dequantize(values: Tensor, scales: Tensor, bits: int) -> Tensor:
    """q * scale[row] (float32), or the float values themselves when bits == 32."""
    if bits == FLOAT_BITS:
        return values.to(torch.float32)
    return values.to(torch.float32) * scales.unsqueeze(-1)


@torch.library.custom_op("lutham::kan_linear", mutates_args=())
def kan_linear(
    x: Tensor,
    knots: Tensor,
    codebook: Tensor,
    codebook_scales: Tensor,
    indices: Tensor,
    gains: Tensor,
    gain_scales: Tensor,
    biases: Tensor,
    bias_scales: Tensor,
    base_weight: Tensor,
    base_scales: Tensor,
    spline_order: int,
    codebook_bits: int,
    index_bits: int,
    gain_bits: int,
    bias_bits: int,
    base_bits: int,
    r2: float,
    basis_kind: int,
    rbf_denominator: float,
) -> Tensor:
    """`r2` (the layer's reconstruction R^2) only travels to the payload; it does not change y.

    basis_kind 0: B-splines of order `spline_order` on `knots` (in, G+2k+1); 1: FastKAN's
    Gaussian RBFs exp(-((x - c) / rbf_denominator)^2) with centers `knots` (in, G), order 0.
    """
    out_features, in_features = indices.shape
    lead = x.shape[:-1]
    x2 = x.reshape(-1, in_features).to(torch.float32)
    bases = basis(x2, knots, spline_order, basis_kind, rbf_denominator)  # (N, in, d)
    words = dequantize(codebook, codebook_scales, codebook_bits)  # (K, d)
    g = dequantize(gains, gain_scales, gain_bits)
    b = dequantize(biases, bias_scales, bias_bits)
    w = dequantize(base_weight, base_scales, base_bits)
    coeffs = g.unsqueeze(-1) * words[indices.long()]  # (out, in, d)
    y = F.linear(F.silu(x2), w)
    y = y + F.linear(bases.reshape(bases.shape[0], -1), coeffs.reshape(out_features, -1))
    y = y + F.linear(bases.sum(-1), b)
    return y.reshape(*lead, out_features)


@kan_linear.register_fake
def _(x, knots, codebook, codebook_scales, indices, *rest):
    return x.new_empty((*x.shape[:-1], indices.shape[0]), dtype=torch.float32)


class SharedKANLinear(nn.Module):
    """A SHARe-KAN layer: indices into a codebook shared with other layers, gains, biases, base.

    Quantized fields are int8 tensors holding `bits`-bit values with one float scale per
    row (bits == 32: float32 values, scales unused).
    """

    basis_kind = BSPLINE  # class-level defaults: modules pickled before these existed still load
    rbf_denominator = 0.0

    def __init__(self, *, knots, codebook, codebook_scales, indices, gains, gain_scales, biases, bias_scales,
                 base_weight, base_scales, spline_order, codebook_bits, index_bits, gain_bits, bias_bits, base_bits,
                 r2: float = float("nan"), basis_kind: int = BSPLINE, rbf_denominator: float = 0.0):
        super().__init__()
        for name, value in dict(knots=knots, codebook=codebook, codebook_scales=codebook_scales, indices=indices,
                                gains=gains, gain_scales=gain_scales, biases=biases, bias_scales=bias_scales,
                                base_weight=base_weight, base_scales=base_scales).items():
            self.register_buffer(name, torch.as_tensor(value).contiguous())
        self.spline_order = int(spline_order)
        self.codebook_bits = int(codebook_bits)
        self.index_bits = int(index_bits)
        self.gain_bits = int(gain_bits)
        self.bias_bits = int(bias_bits)
        self.base_bits = int(base_bits)
        self.r2 = float(r2)
        self.basis_kind = int(basis_kind)
        self.rbf_denominator = float(rbf_denominator)

    @property
    def in_features(self) -> int:
        return self.indices.shape[1]

    @property
    def out_features(self) -> int:
        return self.indices.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.lutham.kan_linear(
            x, self.knots, self.codebook, self.codebook_scales, self.indices, self.gains, self.gain_scales,
            self.biases, self.bias_scales, self.base_weight, self.base_scales, self.spline_order,
            self.codebook_bits, self.index_bits, self.gain_bits, self.bias_bits, self.base_bits, self.r2,
            self.basis_kind, self.rbf_denominator,
        )
