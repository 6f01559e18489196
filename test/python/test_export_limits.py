"""Issue 15.6 + 15.7: export refuses what the runtime would refuse (order, grid, K, dims, from one
definition, lutham/limits.py, pinned here to the C++ constants), and the memory estimate covers
every stage, including the layer init whose cost grows with the square of the grid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lutham import limits
from lutham.model import multihead as models
from lutham.api import export, export_model
from lutham.model.kan import KAN
from lutham.model.multihead import ModelConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = {"backbone": "none", "heads": 1, "widths": [4, 2], "grid": 4, "codebook_size": 8, "int8_baseline": False}


def test_limits_are_the_runtime_constants():
    payload = (ROOT / "delegate/runtime/payload.cpp").read_text()
    kernel = (ROOT / "delegate/runtime/kan_kernel.h").read_text()
    const = lambda text, name: eval(re.search(rf"constexpr \w+ {name} = ([^;]+);", text).group(1).replace("u <<", " <<").replace("ull <<", " <<"))  # noqa: E731
    assert const(payload, "kMaxFeatures") == limits.MAX_FEATURES
    assert const(payload, "kMaxEdges") == limits.MAX_EDGES
    assert const(payload, "kMaxGridSize") == limits.MAX_GRID_SIZE
    assert const(kernel, "kMaxSplineOrder") == limits.MAX_SPLINE_ORDER
    assert "K > 65536" in payload and limits.MAX_CODEBOOK_SIZE == 65536


@pytest.mark.parametrize("flag,value,msg", [("order", 16, r"head layer 0 \(4 -> 2\) has spline order 16; the runtime takes at most 15"),
                                            ("grid", 65537, r"head layer 0 \(4 -> 2\) has grid size 65537; the runtime takes 1\.\.65536")])
def test_export_refuses_what_the_runtime_refuses_before_any_work(tmp_path, flag, value, msg):
    stages = []
    with pytest.raises(ValueError, match=msg) as e:
        export({**TINY, flag: value, "out": str(tmp_path / "o")}, lambda s, f: stages.append(s))
    assert "\n" not in str(e.value)
    assert stages == [] and not (tmp_path / "o").exists()


def test_a_user_model_beyond_the_limits_is_refused(tmp_path):
    model = KAN([3, 2], grid_size=4, spline_order=16)
    with pytest.raises(ValueError, match=r"layer layers\.0 has spline order 16; the runtime takes at most 15, so its \.pte could not run"):
        export_model(model, torch.zeros(1, 3), tmp_path / "o")
    assert not (tmp_path / "o" / "lutham.pte").exists()


def test_memory_estimate_covers_the_layer_init(monkeypatch):
    small = ModelConfig(backbone="none", heads=1, widths=[2, 2, 2], grid=9)
    default = ModelConfig(backbone="none", heads=50)  # the estimate of the usual big export is unchanged
    huge_grid = ModelConfig(backbone="none", heads=1, widths=[2, 2, 2], grid=65536)
    # The init fits spline coefficients through G+1 points per input: in x (G+1) x (G+2k+1) floats,
    # ~6 copies (measured 0.8 GB over the baseline at G=4096, 3.2 GB for 8 inputs).
    assert models.export_memory_bytes(huge_grid) > 6 * 4 * 2 * 65537 * 65543
    assert models.export_memory_bytes(default) == models.dense_model_bytes(default) * models.EXPORT_PEAK_FACTOR
    monkeypatch.setattr(models, "_memory_bytes", lambda: 24 * 10**9)
    with pytest.raises(ValueError, match=r"exporting them needs about 2\d\d\.\d GB of memory, this machine has 24\.0 GB"):
        models.check_memory(huge_grid)
    models.check_memory(small)
