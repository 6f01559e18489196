"""lowering.py and baselines.py: dynamic batch, the backbone on XNNPACK, the folded dense baseline."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers import small_config, small_pair
from lutham.exporter.int8_baseline import FoldedKANLinear, fold_model, folded_xnnpack_bytes
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.files import write_atomic
from lutham.model.kan import KANLinear
from lutham.measure import delegate_counts
from lutham.run.runtime import RunError, run_file, run_program


def _inputs(batch: int, features: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, features, generator=torch.Generator().manual_seed(seed)) * 2.2 - 1.1


def test_one_program_serves_every_batch_up_to_max_batch(tmp_path):
    config, dense, compressed, _ = small_pair(small_config(heads=2, widths=(24, 8, 4)))
    paths = {}
    for name, model, delegate in (("dense", dense, False), ("lutham", compressed, True)):
        paths[name] = tmp_path / f"{name}.pte"
        write_atomic(paths[name], to_executorch_bytes(model, config.example_input(), delegate, max_batch=5))
    for batch in (1, 3, 5):
        x = _inputs(batch, 24, batch)
        for name, model in (("dense", dense), ("lutham", compressed)):
            y = run_program(paths[name], [x])[0]
            with torch.no_grad():
                expected = model(x)
            assert y.shape == (batch, 2, 4)
            assert torch.allclose(y, expected, atol=2e-5, rtol=1e-4), (name, batch, (y - expected).abs().max())
    with pytest.raises(Exception):  # above the upper bound the program refuses the input
        run_program(paths["lutham"], [_inputs(6, 24, 0)])
    # `lutham run` takes a smaller batch than the bound the program reports.
    np.save(tmp_path / "x3.npy", _inputs(3, 24, 3).numpy())
    assert run_file(paths["lutham"], [str(tmp_path / "x3.npy")], repeat=1)["outputs"] == [[3, 2, 4]]


def test_max_batch_1_keeps_the_static_program():
    config, dense, _, _ = small_pair(small_config(heads=1, widths=(16, 4)))
    x = config.example_input()
    assert to_executorch_bytes(dense, x, False) == to_executorch_bytes(dense, x, False, max_batch=1)


class _ConvHeads(nn.Module):
    """A tiny conv backbone + KAN heads, built like MultiHeadKAN (backbone attribute, heads list)."""

    def __init__(self, dense_heads: nn.Module):
        super().__init__()
        torch.manual_seed(3)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Tanh())
        self.heads = dense_heads.heads

    def forward(self, x):
        features = self.backbone(x)
        return torch.stack([head(features) for head in self.heads], dim=1)


def _operator_names(pte: bytes) -> set[str]:
    from executorch.exir._serialize._program import deserialize_pte_binary

    plan = deserialize_pte_binary(pte).program.execution_plan[0]
    return {op.name for op in plan.operators}


def test_backbone_goes_to_xnnpack_and_kan_layers_do_not(tmp_path):
    config, dense_heads, compressed_heads, _ = small_pair(small_config(heads=2, widths=(16, 6, 3)))
    dense, compressed = _ConvHeads(dense_heads).eval(), _ConvHeads(compressed_heads).eval()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    dense_pte = to_executorch_bytes(dense, x, False)
    lutham_pte = to_executorch_bytes(compressed, x, True)
    # Backbone: XNNPACK in both. KAN layers: LuthamBackend in lutham.pte, ExecuTorch's kernels in dense.pte.
    assert set(delegate_counts(dense_pte)) == {"XnnpackBackend"}
    counts = delegate_counts(lutham_pte)
    assert counts["LuthamBackend"] == 4 and counts["XnnpackBackend"] >= 1 and set(counts) == {"LuthamBackend", "XnnpackBackend"}
    dense_ops = _operator_names(dense_pte)
    assert {"aten::ge", "aten::lt", "aten::mm"} <= dense_ops  # the heads (B-spline bases, matmuls) stayed on the portable kernels
    assert not any("convolution" in op for op in dense_ops | _operator_names(lutham_pte))  # no conv left outside XNNPACK
    for name, model, pte in (("dense", dense, dense_pte), ("lutham", compressed, lutham_pte)):
        path = tmp_path / f"{name}.pte"
        write_atomic(path, pte)
        with torch.no_grad():
            expected = model(x)
        y = run_program(path, [x])[0]
        assert torch.allclose(y, expected, atol=1e-4, rtol=1e-3), (name, (y - expected).abs().max())


def test_run_splits_head_time_only_for_lutham_programs(tmp_path, int8_model):
    dense_info = run_file(int8_model.dense_pte, repeat=2)
    np.save(tmp_path / "x2.npy", _inputs(2, 32, 2).numpy())  # a static batch-1 program refuses 2 rows clearly
    with pytest.raises(RunError, match=r"has shape \(2, 32\), input 0 needs \(1, 32\)"):
        run_file(int8_model.lutham_pte, [str(tmp_path / "x2.npy")], repeat=1)
    assert dense_info["head_ms"] is None and dense_info["split"].startswith("unavailable")
    info = run_file(int8_model.lutham_pte, repeat=3)
    assert info["head_ms"] > 0 and info["backbone_ms"] is not None
    assert info["head_ms"] <= info["median_ms"] + 1e-3  # each run's head time is a part of that run


def test_folded_layer_is_the_same_function():
    layer = KANLinear(12, 5, grid_size=6, spline_order=3)
    with torch.no_grad():
        layer.spline_scaler.mul_(3.0)  # the scaler must be folded in, not dropped
    x = _inputs(7, 12, 4)
    with torch.no_grad():
        assert torch.allclose(FoldedKANLinear(layer)(x), layer(x), atol=1e-6)
    _, dense, _, _ = small_pair(small_config(heads=2, widths=(12, 5, 3)))
    folded = fold_model(dense)
    assert not any(isinstance(m, KANLinear) for m in folded.modules())
    assert any(isinstance(m, KANLinear) for m in dense.modules())  # the original is untouched
    with torch.no_grad():
        assert torch.allclose(folded(_inputs(3, 12, 5)), dense(_inputs(3, 12, 5)), atol=1e-6)


def test_folded_dense_on_xnnpack_fp32_and_int8(tmp_path):
    config, dense, _, _ = small_pair(small_config(heads=1, widths=(32, 16, 4)))
    x = _inputs(3, 32, 9)
    with torch.no_grad():
        expected = dense(x)
    sizes = {}
    for int8 in (False, True):
        pte = folded_xnnpack_bytes(dense, config.example_input(), int8, max_batch=4)
        sizes[int8] = len(pte)
        assert set(delegate_counts(pte)) == {"XnnpackBackend"}
        path = tmp_path / f"folded-{int8}.pte"
        write_atomic(path, pte)
        y = run_program(path, [x])[0]
        err = float((y - expected).norm() / expected.norm())
        # int8 weights and per-call int8 activations cost a few percent; fp32 is exact up to rounding.
        assert err < (0.1 if int8 else 1e-5), (int8, err)
    # Folded weights: 16 x 32*(1+8) + 4 x 16*(1+8) floats; int8 stores a quarter of that plus scales.
    fp32_weight_bytes = (16 * 32 * 9 + 4 * 16 * 9) * 4
    assert sizes[False] - sizes[True] > 0.5 * fp32_weight_bytes
