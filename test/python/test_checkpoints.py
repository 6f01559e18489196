"""Checkpoints given with --weights: partial ones, unreadable ones, NaN/Inf weights, and that a
fitting one is what gets exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TINY_EXPORT, _listing, _old_set, _opts
from lutham.api import export
from lutham.model.multihead import ModelConfig, build_model




def _config(**kw) -> ModelConfig:
    return ModelConfig(**({"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4} | kw))


def test_partial_checkpoint_is_refused_unless_allowed(tmp_path):
    trained = build_model(_config(seed=7))
    head0 = {k: v for k, v in trained.state_dict().items() if k.startswith("heads.0.")}
    torch.save(head0, tmp_path / "head0.pt")
    with pytest.raises(ValueError, match=r"lacks 4 of the model's 8 tensors \(heads\.1\.layers\.0\.base_weight, .*\); pass --allow-partial"):
        build_model(_config(weights=str(tmp_path / "head0.pt")))
    one = {"heads.0.layers.0.base_weight": trained.state_dict()["heads.0.layers.0.base_weight"]}
    torch.save(one, tmp_path / "one.pt")
    with pytest.raises(ValueError, match=r"lacks 7 of the model's 8 tensors"):
        build_model(_config(weights=str(tmp_path / "one.pt")))
    # --allow-partial: head 0 from the checkpoint, head 1 the seeded init.
    model = build_model(_config(weights=str(tmp_path / "head0.pt"), allow_partial=True)).state_dict()
    init = build_model(_config()).state_dict()
    for k, v in model.items():
        assert torch.equal(v, head0[k] if k in head0 else init[k]), k
    assert not torch.equal(model["heads.0.layers.0.spline_weight"], init["heads.0.layers.0.spline_weight"])


def test_unreadable_checkpoints_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.save([1, 2, 3], tmp_path / "list.pt")
    for name, msg in [("empty.pt", r"is empty \(0 bytes\), not a PyTorch checkpoint"),
                      ("random.pt", r"is not a readable PyTorch checkpoint"),
                      ("list.pt", r"holds a list, not a state dict")]:
        with pytest.raises(ValueError, match=rf"--weights .*{name} {msg}") as info:
            build_model(_config(weights=str(tmp_path / name)))
        assert "\n" not in str(info.value)


def test_non_finite_weights_are_refused_before_compressing(tmp_path):
    state = build_model(_config()).state_dict()
    state["heads.1.layers.0.spline_scaler"][0, 0] = float("nan")
    state["heads.1.layers.0.spline_scaler"][1, 0] = float("inf")
    torch.save(state, tmp_path / "nan.pt")
    before = _old_set(tmp_path / "out")
    stages = []
    with pytest.raises(ValueError, match=r"heads\.1\.layers\.0\.spline_scaler has 2 non-finite value\(s\) \(NaN or Inf\) of 64"):
        export(_opts(tmp_path / "out", weights=str(tmp_path / "nan.pt")), lambda s, f: stages.append(s))
    assert "export dense.pte" not in stages and not any("compress" in s for s in stages)
    assert _listing(tmp_path / "out") == before


def test_user_checkpoint_is_used(tmp_path):
    import torch

    from lutham.model.multihead import ModelConfig, build_model

    model = build_model(ModelConfig(backbone="none", heads=1, widths=[32, 8, 4], grid=5, seed=7))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    # The int8 baseline is not what this checks: left out: four lowerings instead of six.
    a = export(TINY_EXPORT | dict(out=str(tmp_path / "a"), heads=1, weights=str(tmp_path / "w.pt"), int8_baseline=False))
    b = export(TINY_EXPORT | dict(out=str(tmp_path / "b"), heads=1, seed=7, int8_baseline=False))
    assert (tmp_path / "a" / "dense.pte").read_bytes() == (tmp_path / "b" / "dense.pte").read_bytes()
    with pytest.raises(ValueError, match="does not fit"):
        export(TINY_EXPORT | dict(out=str(tmp_path / "c"), heads=1, widths=[16, 4], weights=str(tmp_path / "w.pt")))
