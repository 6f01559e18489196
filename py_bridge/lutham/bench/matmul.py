"""The `matmul-int8` / `matmul-fp32` bench variants: the limit of any dense method on this CPU.

Every KAN layer folded (W = [base_weight | spline_weight * spline_scaler], exporter/
int8_baseline.FoldedKANLinear) into one bias-free linear, and only those linears on XNNPACK
(fp32, or PT2E dynamic int8 with per-channel weights). The program is fed the features
[silu(x), B(x)] of every layer as inputs, so the basis costs it nothing: it reads 13 bytes
per edge at grid 9 (1 base + 12 coefficients, int8) where LUTHAM reads ~3, and does nothing
else. Two-layer heads (the bench's
model): inputs are the first layer's features (batch, F0), shared by every head, and the
second layer's (batch, heads, F1), one row per head. Output 0 is (batch, heads, outputs) as
MultiHeadKAN's; output 1, the hidden layer, keeps the first matmuls alive.

The heads are built in build_model's seeded order (torch.manual_seed(seed), then one KAN per
head) and folded one at a time, so 50 heads never hold the dense model and its folded copy at
once. One program with a dynamic batch (1..max_batch) serves every batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..exporter.int8_baseline import FoldedKANLinear
from ..lower import lowering
from ..model.kan import KAN, KANLinear
from ..model.multihead import ModelConfig


def layer_features(layer: KANLinear, x: torch.Tensor) -> torch.Tensor:
    """[silu(x), B(x)] (N, in * (1 + d)): what the folded layer multiplies by its weight."""
    bases = layer.basis(x).reshape(x.shape[0], -1)
    return torch.cat([F.silu(x), bases], dim=-1)


class FoldedMatmuls(nn.Module):
    """layers[l][h]: head h's folded layer l (of 2) as a bias-free linear on given features."""

    def __init__(self, layers: list[list[nn.Linear]]):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList(heads) for heads in layers)

    def forward(self, first: torch.Tensor, second: torch.Tensor):
        hidden = torch.stack([m(first) for m in self.layers[0]], dim=1)
        return torch.stack([m(second[:, h]) for h, m in enumerate(self.layers[1])], dim=1), hidden


def build(config: ModelConfig, inputs: list[torch.Tensor]) -> tuple[FoldedMatmuls, list[list[torch.Tensor]]]:
    """The folded matmuls of `config`'s seeded heads, and for each of `inputs` (N, in) the
    program inputs (the features every layer is fed, computed by the float32 heads)."""
    if config.backbone != "none" or len(config.head_widths()) != 3:
        raise ValueError(f"the matmul variants take two-layer heads on a flat input, got widths {config.head_widths()}")
    torch.manual_seed(config.seed)  # as build_model: no backbone, then the heads in order
    layers: list[list[nn.Linear]] = []
    features: list[list[list[torch.Tensor]]] = [[] for _ in inputs]  # [input][layer][head]
    with torch.no_grad():
        for _ in range(config.heads):
            head = KAN(config.head_widths(), grid_size=config.grid, spline_order=config.order)
            # nn.Linear's init (in FoldedKANLinear) draws from the generator: the next head must
            # start where build_model's does.
            rng = torch.get_rng_state()
            for l, layer in enumerate(head.layers):
                if len(layers) <= l:
                    layers.append([])
                layers[l].append(FoldedKANLinear(layer).linear)
            for i, x in enumerate(inputs):
                h = x
                for l, layer in enumerate(head.layers):
                    if len(features[i]) <= l:
                        features[i].append([])
                    features[i][l].append(layer_features(layer, h))
                    h = layer(h)
            torch.set_rng_state(rng)
            del head
    program_inputs = []
    for per_layer in features:
        first = per_layer[0]
        if any(not torch.equal(f, first[0]) for f in first[1:]):
            raise ValueError("the heads' first layers have different grids: one shared feature input cannot feed them")
        program_inputs.append([first[0].contiguous()] + [torch.stack(f, dim=1).contiguous() for f in per_layer[1:]])
    return FoldedMatmuls(layers).eval(), program_inputs


def _dynamic_shapes(example: list[torch.Tensor], max_batch: int):
    if max_batch <= 1:
        return None
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return tuple({0: batch} for _ in example)


def _trace_inputs(example: list[torch.Tensor], max_batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(lowering.trace_example(x, max_batch) for x in example)


def program_bytes(model: FoldedMatmuls, example: list[torch.Tensor], int8: bool, max_batch: int) -> bytes:
    """.pte bytes of the folded matmuls on XNNPACK, fp32 or PT2E dynamic int8 (per-channel)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    args = _trace_inputs(example, max_batch)
    shapes = _dynamic_shapes(example, max_batch)
    with torch.no_grad():
        if int8:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
            captured = torch.export.export(model, args, dynamic_shapes=shapes, strict=False).module()
            prepared = prepare_pt2e(captured, quantizer)
            prepared(*args)
            model = convert_pt2e(prepared)
            del prepared, captured
        exported = torch.export.export(model, args, dynamic_shapes=shapes, strict=False)
        del model
        return lowering.lower_to_bytes(exported, [XnnpackPartitioner()])
