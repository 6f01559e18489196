"""Issue 15.1: `--data` is fed as given (float arrays only cast to float32), 8-bit pixels are mapped
to the explicit `--pixels` range (recorded in the results), and a Dense accuracy near chance warns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lutham.evaluation.fashion_mnist import load_fashion_mnist
from lutham.evaluation import evaluate
from lutham.evaluation.data import load_data
from lutham.evaluation.train import PureKAN

QUICK = dict(subset=40, engine="eager", ks=[8], sparsities=[0.0], uniform_bits=[8], codebook_size=8)


def test_float_npz_is_fed_as_given(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 1, 6, 6), dtype=np.float32)  # pixels in [0, 1], as a model was trained on them
    xt = rng.random((10, 1, 6, 6)).astype(np.float64)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 3, x_test=xt, y_test=np.arange(10) % 3)
    d = load_data(data=str(tmp_path / "d.npz"))
    assert d.x_train.dtype == torch.float32
    assert np.array_equal(d.x_train.numpy(), x)  # not rescaled to [-1, 1]
    assert np.array_equal(d.x_test.numpy(), xt.astype(np.float32))  # the one conversion: to float32
    assert d.describe()["pixels"] == "as given (float32)"
    with pytest.raises(ValueError, match=r"--pixels maps 8-bit pixels; .*d\.npz holds float32 values, fed as given"):
        load_data(data=str(tmp_path / "d.npz"), pixels="0,1")


def test_builtin_dataset_pixels_choice():
    raw = load_fashion_mnist("test")[0][:16].astype(np.float32)
    unit = load_data(subset=16, pixels="0,1")
    assert np.array_equal(unit.x_test.numpy()[:, 0], raw / np.float32(255))
    assert unit.describe()["pixels"] == "0,1"
    default = load_data(subset=16)  # the default, the range the built-in models are trained on
    assert np.array_equal(default.x_test.numpy()[:, 0], raw / np.float32(127.5) - np.float32(1))
    assert default.describe()["pixels"] == "-1,1"
    assert unit.key != default.key  # the checkpoint cache must not mix the two
    with pytest.raises(ValueError, match=r"^--pixels must be 0,1 or -1,1, got '0,255'$"):
        load_data(subset=16, pixels="0,255")


def test_dense_near_chance_warns(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((60, 12), dtype=np.float32)
    y = np.arange(60) % 10
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    model = PureKAN([12, 10], grid_size=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every output 0: argmax is class 0, 10% on 10 balanced classes
    torch.save(model.state_dict(), tmp_path / "zero.pt")
    r = evaluate(dict(data=str(tmp_path / "d.npz"), checkpoint=str(tmp_path / "zero.pt"), **QUICK))
    assert r["models"][0]["table1"][0]["accuracy"] == pytest.approx(0.1)
    assert r["dataset"]["pixels"] == "as given (float32)"
    assert any(w.startswith("Dense 10.0% on 10 classes: check the input scaling") for w in r["warnings"]), r["warnings"]
