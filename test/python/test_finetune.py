"""Codebook fine-tuning (compress/finetune.py): distillation lowers the output error of a small
trained model on its calibration inputs, the stored layout stays, the calibration .npz is checked
with one-line errors, and `lutham export --finetune-codebook` writes the same files twice."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lutham.api import export
from lutham.compress import CompressionConfig, compress_model, relative_output_error
from lutham.compress.finetune import distill_codebooks, finetune_codebooks, load_calibration
from lutham.compress.layer import SharedKANLinear
from lutham.evaluation import methods as M
from lutham.evaluation.data import load_data
from lutham.evaluation.train import PureKAN


@pytest.fixture(scope="module")
def trained():
    """A tiny pure KAN (784 -> 8 -> 10) trained one epoch on 1,000 Fashion-MNIST images."""
    data = load_data(subset=1000)
    torch.manual_seed(0)
    model = PureKAN([784, 8, 10], grid_size=5, spline_order=3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.x_train), generator=gen)
    for i in range(0, len(perm), 128):
        idx = perm[i : i + 128]
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data


def test_distillation_lowers_the_output_error_and_keeps_the_storage(trained):
    model, data = trained
    compressed, _ = compress_model(model, CompressionConfig(codebook_size=8))
    calib = data.x_train[:300]
    tuned, facts = distill_codebooks(model, compressed, calib, epochs=10)
    assert facts["kept"] and facts["calibration_inputs"] == 300
    assert facts["output_error_after"] < 0.7 * facts["output_error_before"], facts
    layers = [m for m in tuned.modules() if isinstance(m, SharedKANLinear)]
    before = [m for m in compressed.modules() if isinstance(m, SharedKANLinear)]
    assert len(layers) == 2 and all(m.codebook.dtype == torch.int8 and m.gains.dtype == torch.int8 for m in layers)
    assert all(m.gain_bits == b.gain_bits and torch.equal(m.indices, b.indices) and torch.equal(m.biases, b.biases)
               for m, b in zip(layers, before))
    assert not torch.equal(layers[0].codebook_scales, before[0].codebook_scales)
    assert M.shared_bytes(tuned) == M.shared_bytes(compressed)
    # held-out images: the distilled model is at least as close to the dense one
    test_x = data.x_test[:300]
    assert relative_output_error(model, tuned, test_x) < relative_output_error(model, compressed, test_x)


def test_codebooks_only_and_eval_labels_use_the_same_function(trained):
    model, data = trained
    compressed, _ = compress_model(model, CompressionConfig(codebook_size=8))
    calib = data.x_train[:300]
    _, codebooks_only = distill_codebooks(model, compressed, calib, epochs=2, tune_gains=False)
    assert codebooks_only["output_error_after"] < codebooks_only["output_error_before"]
    same, diverged = distill_codebooks(model, compressed, calib, epochs=1, lr=0.1)  # a step far too large
    assert not diverged["kept"] and diverged["output_error_after"] > diverged["output_error_before"] and same is compressed
    assert M.finetune_codebooks is finetune_codebooks  # eval's labelled variant: cross-entropy, same code
    x, y = data.calibration(size=128)
    labelled = finetune_codebooks(compressed, x, y, epochs=1)
    assert all(m.codebook.dtype == torch.int8 for m in labelled.modules() if isinstance(m, SharedKANLinear))


def test_calibration_file_errors(tmp_path):
    shape = (1, 28, 28)
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((5, *shape), np.float32))
    assert load_calibration(good, shape).shape == (5, *shape)
    np.savez(tmp_path / "xy.npz", x=np.zeros((3, *shape), np.float64), y=np.zeros(3, np.int64))
    assert load_calibration(tmp_path / "xy.npz", shape).dtype == torch.float32
    cases = {
        "missing.npz": (None, r"^--calibration: no such file .*missing\.npz$"),
        "empty.npz": ({}, r"holds no arrays; it needs one array of inputs shaped \(N, 1, 28, 28\)$"),
        "shape.npz": ({"x": np.zeros((5, 784), np.float32)}, r"array 'x' has shape \(5, 784\); the model takes \(N, 1, 28, 28\)$"),
        "ints.npz": ({"inputs": np.zeros((5, *shape), np.uint8)}, r"array 'inputs' is uint8; the inputs must be floating point"),
        "two.npz": ({"a": np.zeros((5, *shape), np.float32), "b": np.zeros(5)}, r"holds 2 arrays \(a, b\); give one array of inputs, or name it x$"),
        "none.npz": ({"x": np.zeros((0, *shape), np.float32)}, r"holds no inputs"),
        "nan.npz": ({"x": np.full((2, *shape), np.nan, np.float32)}, r"NaN or infinite"),
        "objects.npz": ({"x": np.array([{"a": 1}], dtype=object)}, r"cannot be read without pickle"),
    }
    for name, (arrays, pattern) in cases.items():
        path = tmp_path / name
        if arrays is not None:
            np.savez(path, **arrays)
        with pytest.raises(ValueError, match=pattern) as e:
            load_calibration(path, shape)
        assert "\n" not in str(e.value)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text\.npz is not a \.npz file"):
        load_calibration(tmp_path / "text.npz", shape)
    np.save(tmp_path / "one.npy", np.zeros((5, *shape), np.float32))
    with pytest.raises(ValueError, match=r"a single \.npy array, not a \.npz file"):
        load_calibration(tmp_path / "one.npy", shape)


EXPORT = dict(backbone="none", heads=2, widths=[16, 8, 4], grid=4, codebook_size=8, int8_baseline=False)


def test_export_finetune_is_byte_identical_and_reports_the_drop(tmp_path):
    rng = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=(0.5 * rng.standard_normal((200, 16))).astype(np.float32))
    opts = EXPORT | {"finetune_codebook": True, "calibration": str(calib), "finetune_epochs": 3}
    a = export(opts | {"out": str(tmp_path / "a")})
    export(opts | {"out": str(tmp_path / "b")})
    for name in ("dense.pte", "lutham.pte", "report.json"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
    ft = a["finetune"]
    assert ft["calibration"]["path"] == "../calib.npz" and ft["calibration_inputs"] == 200 and ft["epochs"] == 3
    assert ft["kept"] and ft["output_error_after"] < ft["output_error_before"]
    plain = export(EXPORT | {"out": str(tmp_path / "plain")})
    assert "finetune" not in plain
    assert a["output_relative_l2_error"] < plain["output_relative_l2_error"]  # on the seeded error inputs too
    assert (tmp_path / "a" / "lutham.pte").read_bytes() != (tmp_path / "plain" / "lutham.pte").read_bytes()


def test_export_finetune_flag_errors(tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.zeros((4, 3), np.float32))
    cases = [
        ({"calibration": str(calib)}, r"^--calibration goes with --finetune-codebook$"),
        ({"finetune_codebook": True}, r"^--finetune-codebook needs --calibration"),
        ({"finetune_codebook": True, "calibration": str(tmp_path / "no.npz")}, r"^--calibration: no such file"),
        ({"finetune_codebook": True, "calibration": str(calib), "finetune_epochs": 0}, r"^--finetune-epochs must be at least 1"),
        ({"finetune_codebook": True, "calibration": str(calib)}, r"array 'x' has shape \(4, 3\); the model takes \(N, 16\)$"),
    ]
    for extra, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            export(EXPORT | {"out": str(tmp_path / "out")} | extra)
    assert not (tmp_path / "out" / "lutham.pte").exists()
