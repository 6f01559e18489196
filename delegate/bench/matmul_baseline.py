"""Programs for the memory-bound comparison (delegate/bench/compare.py): one seeded KAN model
(no backbone, `heads` heads of 2048 -> 512 -> 25 at grid 9, order 3: the default of
`lutham export --backbone none`) as

  lutham   lutham.pte: the SHARe-KAN compressed heads on LuthamBackend (default compression,
           the model seed as the codebook seed, as `lutham export` and `lutham bench` do);
  matmul   the same dense heads folded (W = [base_weight | spline_weight * spline_scaler],
           baselines.FoldedKANLinear) into int8 matmuls ALONE: PT2E dynamic int8
           (XNNPACKQuantizer, per-channel weights) on XNNPACK, fed the features
           [silu(x), B(x)] of both layers as inputs, so the basis costs nothing. This is the
           limit of any dense method on this CPU: it reads 13 bytes per edge (1 base + 12
           coefficients) where LUTHAM reads ~3.

The heads are built in the seeded order build_model uses (torch.manual_seed(seed), then one
KAN per head), one at a time for `matmul`, so 50 heads never hold the dense model and its
int8 copy at once. Each program takes a static batch.

    PYTHONPATH=py_bridge python delegate/bench/matmul_baseline.py {lutham,matmul} OUT.pte \
        [--heads H] [--batch B] [--seed S]

Prints one JSON line: {"program", "bytes", "weight_bytes"} (weight_bytes: the int8 weights
and scales a matmul run reads, or the payload + codebook bytes of the LuthamBackend parts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch
from torch import nn

# Today's module paths (the restructuring moves them: keep every project import here).
from lutham.measure import lutham_part_bytes
from lutham.exporter.int8_baseline import FoldedKANLinear
from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.files import write_atomic
from lutham.model.kan import KAN
from lutham.model.multihead import ModelConfig, build_model


class FoldedMatmuls(nn.Module):
    """Every head's folded layers as bias-free linears on given features: x1 feeds the first
    layer of every head, x2 the second (features of the right width, values as given)."""

    def __init__(self, first: list[nn.Linear], second: list[nn.Linear]):
        super().__init__()
        self.first = nn.ModuleList(first)
        self.second = nn.ModuleList(second)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x1) for m in self.first] + [m(x2) for m in self.second], dim=-1)


def folded_heads(config: ModelConfig) -> FoldedMatmuls:
    widths = config.head_widths()
    if len(widths) != 3:
        raise ValueError(f"the matmul baseline is written for two-layer heads, got widths {widths}")
    torch.manual_seed(config.seed)  # as build_model: no backbone, then the heads in order
    first, second = [], []
    for _ in range(config.heads):
        head = KAN(widths, grid_size=config.grid, spline_order=config.order)
        first.append(FoldedKANLinear(head.layers[0]).linear)
        second.append(FoldedKANLinear(head.layers[1]).linear)
        del head
    return FoldedMatmuls(first, second).eval()


def matmul_program(config: ModelConfig) -> tuple[bytes, int]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = folded_heads(config)
    gen = torch.Generator().manual_seed(config.seed + 1)
    x1 = torch.rand(config.batch, model.first[0].in_features, generator=gen) * 2 - 1
    x2 = torch.rand(config.batch, model.second[0].in_features, generator=gen) * 2 - 1
    weight_bytes = sum(m.out_features * (m.in_features + 4) for m in list(model.first) + list(model.second))
    with torch.no_grad():
        captured = torch.export.export(model, (x1, x2), strict=False).module()
        del model
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
        prepared = prepare_pt2e(captured, quantizer)
        prepared(x1, x2)
        converted = convert_pt2e(prepared)
        del prepared, captured
        exported = torch.export.export(converted, (x1, x2), strict=False)
        del converted
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        del exported
        program = edge.to_executorch(ExecutorchBackendConfig(
            memory_planning_pass=MemoryPlanningPass(alloc_graph_input=True, alloc_graph_output=True)))
    return program.buffer, weight_bytes


def lutham_program(config: ModelConfig) -> tuple[bytes, int]:
    dense = build_model(config)
    compressed, _ = compress_model(dense, CompressionConfig(seed=config.seed))
    del dense
    data = to_executorch_bytes(compressed.eval(), config.example_input(), delegate=True)
    part = lutham_part_bytes(data)
    return data, part["payload_bytes"] + part["codebook_bytes"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["lutham", "matmul"])
    p.add_argument("out")
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    config = ModelConfig(backbone="none", heads=a.heads, batch=a.batch, seed=a.seed)
    try:
        config.validate()
    except ValueError as err:
        print(f"matmul_baseline: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    data, weight_bytes = (lutham_program if a.what == "lutham" else matmul_program)(config)
    write_atomic(a.out, data)
    print(json.dumps({"program": a.what, "heads": a.heads, "batch": a.batch, "bytes": len(data),
                      "weight_bytes": weight_bytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
