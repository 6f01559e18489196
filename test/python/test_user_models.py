"""The user's own model: `export --model` (pickled module, .pt2, my_net.py:build + --weights under
any key prefix), `lutham.export`, and `eval --checkpoint` on such models."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

import lutham
from lutham import api
from lutham.compress import CompressionConfig, compress_model
from lutham.evaluation import evaluate
from lutham.model.load import load_state_any_prefix, load_user_model, user_model

from kan_formats import ConvBNKAN, EfficientKAN, FastKAN

SMALL = dict(codebook_size=16, seed=0)


@pytest.fixture(scope="module")
def conv_bn(tmp_path_factory):
    """A conv+BN model with an efficient-kan head, its factory file and a `module.`-prefixed state dict."""
    tmp = tmp_path_factory.mktemp("user")
    torch.manual_seed(0)
    model = ConvBNKAN(hidden=8).eval()
    with torch.no_grad():
        model.backbone[1].running_var.uniform_(0.5, 2.0)
    (tmp / "my_net.py").write_text(textwrap.dedent("""
        from kan_formats import ConvBNKAN

        def build():
            return ConvBNKAN(hidden=8)
    """))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp / "state.pt")
    return model, tmp


def test_factory_with_prefixed_weights(conv_bn):
    model, tmp = conv_bn
    loaded = load_user_model(f"{tmp}/my_net.py:build", str(tmp / "state.pt"))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    converted, shape = user_model(f"{tmp}/my_net.py:build", str(tmp / "state.pt"), [1, 1, 28, 28])
    assert shape == [1, 1, 28, 28]
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)


def test_prefix_added_and_mismatches():
    kan = EfficientKAN([4, 3])
    state = {k.removeprefix("layers."): v for k, v in kan.state_dict().items()}  # keys "0.grid", ...
    target = EfficientKAN([4, 3])
    load_state_any_prefix(target, state, "w.pt")
    torch.testing.assert_close(target.layers[0].spline_weight, kan.layers[0].spline_weight)
    with pytest.raises(ValueError, match=r"w\.pt does not fit the model: layers\.0\.base_weight has shape \(3, 4\) in the checkpoint, \(2, 4\)"):
        load_state_any_prefix(EfficientKAN([4, 2]), kan.state_dict(), "w.pt")
    partial = dict(kan.state_dict())
    partial.pop("layers.0.grid")
    with pytest.raises(ValueError, match="does not fit the model under any key prefix"):
        load_state_any_prefix(EfficientKAN([4, 3]), partial, "w.pt")


def test_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="^--model: no such file"):
        user_model(str(tmp_path / "nope.py") + ":build", None, None)
    (tmp_path / "m.py").write_text("def build():\n    return 3\n")
    with pytest.raises(ValueError, match=r"build\(\) returned int, not an nn.Module"):
        user_model(f"{tmp_path}/m.py:build", None, None)
    with pytest.raises(ValueError, match="no function 'make'"):
        user_model(f"{tmp_path}/m.py:make", None, None)
    torch.save(ConvBNKAN(), tmp_path / "conv.pt")
    with pytest.raises(ValueError, match="cannot tell the input shape of this model: pass --input-shape"):
        user_model(str(tmp_path / "conv.pt"), None, None, trust_pickle=True)
    torch.save({"fc.weight": torch.zeros(2, 2), "head.0.base_weight": torch.zeros(2, 2)}, tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="is a state dict of more than KAN layers"):
        user_model(str(tmp_path / "sd.pt"), None, None)


def _files(out):
    return {n: (out / n).read_bytes() for n in ("dense.pte", "lutham.pte")}


def test_cli_export_of_factory_model_is_deterministic(conv_bn, tmp_path):
    _, tmp = conv_bn
    # The int8 baseline is only measured, never written (test_export checks it; `lutham.export`
    # below measures it on a user model): not what these bytes are.
    opts = dict(model=f"{tmp}/my_net.py:build", weights=str(tmp / "state.pt"), input_shape=[1, 1, 28, 28],
                int8_baseline=False, **SMALL)
    a = api.export({**opts, "out": str(tmp_path / "a")})
    b = api.export({**opts, "out": str(tmp_path / "b")})
    assert a["model"]["kan_layers"] == ["head.layers.0", "head.layers.1"] and a["model"]["input_shape"] == [1, 1, 28, 28]
    assert a["lutham"]["delegates"] == 2 and a["ratio"]["kan"] > 1
    assert 0 < a["output_relative_l2_error"] < float("inf")  # random shapes at K = 16: lossy
    assert json.loads((tmp_path / "a" / "report.json").read_text())["model"]["source"].endswith("my_net.py:build")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_cli_export_of_pykan_pickled_module_and_pt2_fastkan(tmp_path):
    """Each source format up to the .pte files (int8_baseline off: the baseline is only measured,
    and test_lutham_export_python_api measures it on a user model)."""
    kan = pytest.importorskip("kan")
    # pykan models do not pickle (lambdas): its users save a state dict, so: code + weights.
    (tmp_path / "my_pykan.py").write_text(textwrap.dedent("""
        import kan

        def build():
            return kan.MultKAN(width=[3, 4, 2], grid=4, k=3, seed=0, auto_save=False)
    """))
    model = kan.MultKAN(width=[3, 4, 2], grid=4, k=3, seed=7, auto_save=False)
    torch.save({f"model.{k}": v for k, v in model.state_dict().items()}, tmp_path / "pykan_state.pt")
    # Lossless settings (fp32, K >= edges): the compressed model is the pykan model.
    r = api.export(dict(model=f"{tmp_path}/my_pykan.py:build", weights=str(tmp_path / "pykan_state.pt"),
                        out=str(tmp_path / "p"), int8=False, codebook_size=65536, int8_baseline=False))
    assert r["model"]["input_shape"] == [1, 3] and r["lutham"]["delegates"] == 2  # inferred from the first KAN layer
    assert r["output_relative_l2_error"] < 1e-5

    torch.manual_seed(0)
    torch.save(EfficientKAN([5, 4, 2]), tmp_path / "pickled.pt")  # a whole pickled nn.Module
    r = api.export(dict(model=str(tmp_path / "pickled.pt"), trust_pickle=True, out=str(tmp_path / "e"), int8=False, codebook_size=65536,
                        int8_baseline=False))
    assert r["model"]["input_shape"] == [1, 5] and r["output_relative_l2_error"] < 1e-5

    fast = FastKAN([6, 5, 3], num_grids=5).eval()
    torch.export.save(torch.export.export(fast, (torch.randn(2, 6),)), tmp_path / "fast.pt2")
    # The runtime side of the RBF basis is the C++ backend's; this checks the .pt2 path up to the .pte.
    r = api.export(dict(model=str(tmp_path / "fast.pt2"), out=str(tmp_path / "f"), int8_baseline=False, **SMALL))
    assert r["model"]["input_shape"] == [2, 6] and r["lutham"]["delegates"] == 2


def test_pt2_with_dynamic_batch(conv_bn, tmp_path):
    """A .pt2 exported with a dynamic batch runs at any batch after conversion (what eval needs)."""
    model, _ = conv_bn
    batch = torch.export.Dim.DYNAMIC
    program = torch.export.export(model, (torch.randn(2, 1, 28, 28),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, tmp_path / "dyn.pt2")
    converted, shape = user_model(str(tmp_path / "dyn.pt2"), None, None)
    assert shape == [2, 1, 28, 28]  # the program's example, no guard added by reading it
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
        assert converted(x[:1]).shape == (1, 10)
    compressed, _ = compress_model(converted, CompressionConfig(codebook_size=8))  # copies the model
    assert compressed(x).shape == (5, 10)


def test_lutham_export_python_api(tmp_path):
    torch.manual_seed(0)
    model = EfficientKAN([6, 5, 3])
    m = lutham.convert(model)
    x = torch.rand(2, 6) * 2 - 1
    report = lutham.export(m, (x,), tmp_path / "out", codebook_size=8, int8=False)
    assert report["model"]["source"] == "lutham.export" and report["model"]["input_shape"] == [2, 6]
    assert report["compression"]["gain_bits"] == 32 and report["lutham"]["delegates"] == 2
    assert (tmp_path / "out" / "report.json").is_file()
    with pytest.raises(ValueError, match=r"unknown compression option\(s\) \['codebook'\]"):
        lutham.export(m, x, tmp_path / "bad", codebook=8)


def test_eval_checkpoint_formats(conv_bn, tmp_path):
    model, tmp = conv_bn
    quick = dict(subset=40, engine="eager", ks=[8], sparsities=[0.0], uniform_bits=[8], codebook_size=8)
    # A conv+BatchNorm backbone with an efficient-kan head: the code plus a prefixed state dict.
    r = evaluate(dict(checkpoint=f"{tmp}/my_net.py:build", weights=str(tmp / "state.pt"), **quick))
    rows = r["models"][0]["table1"]
    assert r["models"][0]["edges"] == 4 * 7 * 7 * 8 + 8 * 10
    assert [row["method"] for row in rows] == ["Dense", "SHARe-KAN fp32", "SHARe-KAN int"]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
    # An efficient-kan KAN saved under a `head.` prefix alone: the pure KAN on the pixels.
    torch.manual_seed(1)
    head = EfficientKAN([784, 6, 10])
    torch.save({f"head.{k}": v for k, v in head.state_dict().items()}, tmp_path / "head.pt")
    r = evaluate(dict(checkpoint=str(tmp_path / "head.pt"), **quick))
    assert r["models"][0]["kind"] == "pure_kan" and r["models"][0]["edges"] == 784 * 6 + 6 * 10
