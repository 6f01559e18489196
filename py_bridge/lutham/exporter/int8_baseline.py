"""What users ship today instead of LUTHAM: the KAN layers folded into one matmul, on XNNPACK.

A KANLinear is y = [silu(x), B(x)] @ W^T with W = [base_weight | spline_weight * spline_scaler]
(out, in * (1 + G + k)). efficient-kan multiplies spline_weight by spline_scaler on every call;
the folded layer does it once, so XNNPACK sees a plain linear layer:
- fp32: the folded model lowered with XnnpackPartitioner;
- int8: the same after PT2E dynamic quantization (XNNPACKQuantizer, symmetric, per-channel
  weights, activations quantized per call), i.e. int8 weights + fp32 activations.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..lower import lowering
from ..model.kan import KANLinear, kan_forward
from ..model.modules import replace_module


class FoldedKANLinear(nn.Module):
    """A KANLinear with W pre-folded: same outputs (up to float rounding), one linear layer."""

    def __init__(self, layer: KANLinear):
        super().__init__()
        self.in_features, self.out_features, self.spline_order = layer.in_features, layer.out_features, layer.spline_order
        self.basis_kind, self.rbf_denominator = layer.basis_kind, layer.rbf_denominator
        self.register_buffer("grid", layer.grid.detach().clone())
        with torch.no_grad():
            folded = torch.cat([layer.base_weight, layer.scaled_spline_weight().reshape(layer.out_features, -1)], dim=1)
        self.linear = nn.Linear(folded.shape[1], layer.out_features, bias=False)
        self.linear.weight = nn.Parameter(folded.contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kan_forward(x, self.grid, self.spline_order, self.basis_kind, self.rbf_denominator, folded=self.linear.weight)


def fold_model(model: nn.Module) -> nn.Module:
    """A copy of `model` with every KANLinear folded; the original is untouched.

    The dense layers are not copied (they can be GBs): each is replaced by its folded layer.
    """
    kan_layers = {name: m for name, m in model.named_modules() if isinstance(m, KANLinear)}
    folded = copy.deepcopy(model, memo={id(m): nn.Identity() for m in kan_layers.values()})
    for name, layer in kan_layers.items():
        replace_module(folded, name, FoldedKANLinear(layer))
    return folded.eval()


def quantize_dynamic_int8(model: nn.Module, example: torch.Tensor, max_batch: int = 1) -> nn.Module:
    """PT2E dynamic int8 with XNNPACKQuantizer (per-channel weights); returns the converted module."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    captured = lowering.export_program(model, example, max_batch).module()
    prepared = prepare_pt2e(captured, quantizer)
    prepared(lowering.trace_example(example, max_batch))  # dynamic activations: one call sets up the observers
    return convert_pt2e(prepared)


def folded_xnnpack_bytes(model: nn.Module, example: torch.Tensor, int8: bool, max_batch: int = 1) -> bytes:
    """.pte bytes of the folded model with every supported op on XNNPACK (fp32 or dynamic int8)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    folded = fold_model(model)
    if int8:
        folded = quantize_dynamic_int8(folded, example, max_batch)
    exported = lowering.export_program(folded, example, max_batch)
    return lowering.lower_to_bytes(exported, [XnnpackPartitioner()])


def _with_heads(model: nn.Module, count: int, backbone: bool = True) -> nn.Module:
    """A shallow copy of a MultiHeadKAN that keeps its first `count` heads (sharing their modules),
    and without its backbone when backbone=False (it then takes the backbone's features)."""
    view = copy.copy(model)
    view._modules = dict(model._modules)
    view._modules["heads"] = nn.ModuleList(list(model.heads)[:count])
    if not backbone:
        view._modules["backbone"] = None
    return view


# Above this many heads, the int8 baseline is measured at 1 head and extrapolated.
EXTRAPOLATE_ABOVE_HEADS = 2


def dense_int8_xnnpack_size(model: nn.Module, example: torch.Tensor, max_batch: int = 1, progress=None) -> dict:
    """Size of the Dense-int8-XNNPACK .pte of `model` (folded, dynamic int8, all on XNNPACK).

    Every head adds the same tensors (same widths, one int8 weight + one scale per row), so for
    many heads the size is size(1 head) + (heads - 1) * (one head's bytes). One head's bytes are
    measured on the folded heads alone, without the backbone (programs of the backbone's features
    with 1 and 2 heads: seconds; without a backbone the first program is the 1-head one), so the backbone (~100 s to quantize and lower ResNet-50) is
    exported once, not twice, and 50 folded heads (~10 GB) never are.
    progress(label, fraction) hears of each program before it is built.
    """
    report = progress or (lambda label, fraction: None)
    heads = len(getattr(model, "heads", []))
    if heads <= EXTRAPOLATE_ABOVE_HEADS:
        return {"file_bytes": len(folded_xnnpack_bytes(model, example, True, max_batch)), "method": "exported"}
    backbone = getattr(model, "backbone", None) is not None
    programs = 3 if backbone else 2
    report(f"size of dense int8 (XNNPACK): 1 head{' with the backbone' if backbone else ''} (program 1/{programs})", 0.0)
    one = len(folded_xnnpack_bytes(_with_heads(model, 1), example, True, max_batch))
    features = example
    if backbone:
        with torch.no_grad():
            features = model.backbone(example).detach().contiguous()
    # Without a backbone the 1-head program is the 1-head-alone one: built once.
    alone = [] if backbone else [one]
    for n in (1, 2)[len(alone):]:
        step = n + 1 if backbone else n
        report(f"size of dense int8 (XNNPACK): {n} head(s) alone (program {step}/{programs})", (0.8, 0.9)[n - 1] if backbone else 0.5)
        alone.append(len(folded_xnnpack_bytes(_with_heads(model, n, backbone=False), features, True, max_batch)))
    per_head = alone[1] - alone[0]
    return {"file_bytes": one + (heads - 1) * per_head,
            "method": f"extrapolated from 1 head ({one} bytes) and {per_head} bytes per further head (folded heads alone, 1 and 2)"}
