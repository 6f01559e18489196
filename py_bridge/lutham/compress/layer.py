"""lutham::kan_linear: a compressed KAN layer kept as ONE graph node, and SharedKANLinear, the
module that calls it.

The op carries everything the payload needs as explicit tensors and ints, so
LuthamBackend.preprocess is a pure function of the exported graph. Its eager kernel is
the PyTorch reference of the runtime's math (it expands coefficients for clarity; the C++
runtime never does).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model.kan import BSPLINE, LuthamKANLayer, kan_forward
from .int8 import COMPUTE_INT8, int8_forward
from .quant import FLOAT_BITS, Quantized

# lutham::kan_linear's arguments in order, with their schema types: the op's schema,
# SharedKANLinear (its attributes have these names) and lower/preprocess.py all read this one
# list, so reordering or adding an argument cannot break lowering silently.
# r2 (the layer's reconstruction R^2) only travels to the payload; it does not change y.
# basis_kind 0: B-splines of order spline_order on knots (in, G+2k+1); 1: FastKAN's Gaussian
# RBFs exp(-((x - c) / rbf_denominator)^2) with centers knots (in, G), order 0.
# compute 0: the float mode; 1: the int8 mode (compress/int8.py), which the eager kernel then
# computes bit for bit as LuthamBackend does.
KAN_LINEAR_ARGS: dict[str, str] = {
    "x": "Tensor",
    "knots": "Tensor",
    "codebook": "Tensor",
    "codebook_scales": "Tensor",
    "indices": "Tensor",
    "gains": "Tensor",
    "gain_scales": "Tensor",
    "biases": "Tensor",
    "bias_scales": "Tensor",
    "base_weight": "Tensor",
    "base_scales": "Tensor",
    "spline_order": "SymInt",
    "codebook_bits": "SymInt",
    "index_bits": "SymInt",
    "gain_bits": "SymInt",
    "bias_bits": "SymInt",
    "base_bits": "SymInt",
    "r2": "float",
    "basis_kind": "SymInt",
    "rbf_denominator": "float",
    "compute": "SymInt",
}
# The layer's own fields: every argument but the input.
LAYER_TENSORS = tuple(n for n, t in KAN_LINEAR_ARGS.items() if t == "Tensor" and n != "x")
LAYER_SCALARS = tuple(n for n, t in KAN_LINEAR_ARGS.items() if t != "Tensor")


def dequantize(values: Tensor, scales: Tensor, bits: int) -> Tensor:
    """q * scale[row] (float32), or the float values themselves when bits == 32."""
    if bits == FLOAT_BITS:
        return values.to(torch.float32)
    return values.to(torch.float32) * scales.unsqueeze(-1)


@torch.library.custom_op("lutham::kan_linear", mutates_args=(),
                         schema="(" + ", ".join(f"{t} {n}" for n, t in KAN_LINEAR_ARGS.items()) + ") -> Tensor")
def kan_linear(*args) -> Tensor:
    a = dict(zip(KAN_LINEAR_ARGS, args))
    words = dequantize(a["codebook"], a["codebook_scales"], a["codebook_bits"])  # (K, d)
    if a["compute"] == COMPUTE_INT8:
        return _int8(a, words)
    return kan_forward(
        a["x"].to(torch.float32), a["knots"], a["spline_order"], a["basis_kind"], a["rbf_denominator"],
        base_weight=dequantize(a["base_weight"], a["base_scales"], a["base_bits"]),
        coefficients=words[a["indices"].long()],  # (out, in, d)
        edge_scale=dequantize(a["gains"], a["gain_scales"], a["gain_bits"]),
        bias=dequantize(a["biases"], a["bias_scales"], a["bias_bits"]),
    )


def _int8(a: dict, words: Tensor) -> Tensor:
    """The int8 mode's outputs (numpy, the runtime's bits) for x of any leading shape."""
    x = a["x"].detach().to(torch.float32)
    out = a["indices"].shape[0]
    fields = [Quantized(a[v].numpy(), a[sc].numpy(), a[b]) for v, sc, b in
              (("gains", "gain_scales", "gain_bits"), ("biases", "bias_scales", "bias_bits"), ("base_weight", "base_scales", "base_bits"))]
    y = int8_forward(x.reshape(-1, x.shape[-1]).numpy(), a["knots"].numpy(), a["spline_order"], words.numpy(),
                     a["indices"].numpy(), *fields)
    return torch.from_numpy(y).reshape(*x.shape[:-1], out)


@kan_linear.register_fake
def _(x, knots, codebook, codebook_scales, indices, *rest):
    return x.new_empty((*x.shape[:-1], indices.shape[0]), dtype=torch.float32)


class SharedKANLinear(LuthamKANLayer):
    """A SHARe-KAN layer: indices into a codebook shared with other layers, gains, biases, base.

    Quantized fields are int8 tensors holding `bits`-bit values with one float scale per
    row (bits == 32: float32 values, scales unused).
    """

    def __init__(self, *, knots, codebook, codebook_scales, indices, gains, gain_scales, biases, bias_scales,
                 base_weight, base_scales, spline_order, codebook_bits, index_bits, gain_bits, bias_bits, base_bits,
                 r2: float = float("nan"), basis_kind: int = BSPLINE, rbf_denominator: float = 0.0, compute: int = 0):
        super().__init__()
        fields = locals()
        for name in LAYER_TENSORS:
            self.register_buffer(name, torch.as_tensor(fields[name]).contiguous())
        for name in LAYER_SCALARS:
            kind = float if KAN_LINEAR_ARGS[name] == "float" else int
            setattr(self, name, kind(fields[name]))

    @property
    def in_features(self) -> int:
        return self.indices.shape[1]

    @property
    def out_features(self) -> int:
        return self.indices.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.lutham.kan_linear(x, *(getattr(self, name) for name in list(KAN_LINEAR_ARGS)[1:]))
