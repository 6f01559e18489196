"""lutham.evaluation on tiny subsets (seconds): the tables, the storage counts, the baselines,
user data and checkpoints. The full run is `npx lutham eval --dataset fashion-mnist`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.evaluation import evaluate, report_data
from lutham.evaluation import methods as M
from lutham.evaluation.data import load_data
from lutham.evaluation.train import PureKAN, VisionKAN, checkpoint_path, load_checkpoint, train
from lutham.compress.layer import SharedKANLinear

TINY = dict(subset=200, epochs=1, models=["pure_kan"], ks=[16, 64], sparsities=[0, 0.5], uniform_bits=[4],
            threads=2, seed=0)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LUTHAM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def small_kan(seed=0):
    torch.manual_seed(seed)
    return PureKAN([16, 8, 3], grid_size=5, spline_order=3).eval()


def test_evaluate_tiny_subset_has_every_table(tmp_path):
    r = evaluate({**TINY, "out": str(tmp_path / "r.json")})
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(r))
    assert r["dataset"]["train"] == 200 and r["dataset"]["test"] == 200
    (m,) = r["models"]
    dense, fp32, int_ = m["table1"]
    assert [row["method"] for row in m["table1"]] == ["Dense", "SHARe-KAN fp32", "SHARe-KAN int"]
    for row in m["table1"]:
        assert 0 <= row["accuracy"] <= 1 and row["se"] == pytest.approx(math.sqrt(row["accuracy"] * (1 - row["accuracy"]) / 200))
    assert dense["bytes"] == m["dense_bytes"] and dense["ratio"] == 1
    # Defaults: 3 B/edge (22 bits in the v2 layout) + codebook and scales: well past 12x on the pure KAN's layers.
    assert int_["ratio"] > 12 and fp32["ratio"] > 3
    if int_["engine"] == "executorch":  # the analytic count agrees with what lutham.pte stores
        assert int_["bytes"] == int_["pte"]["kan_bytes"]
        assert abs(int_["analytic_bytes"] - int_["bytes"]) / int_["bytes"] < 0.02
        assert abs(int_["accuracy"] - int_["eager_accuracy"]) <= 1 / 200 + 1e-9
    else:
        assert m["engine_note"]
    assert [s["K"] for s in m["saturation"]] == [16, 64]
    assert m["saturation"][0]["r2"] < m["saturation"][1]["r2"] <= 1
    assert [p["sparsity"] for p in m["pruning"]] == [0, 0.5]
    assert m["pruning"][1]["bytes"] < m["pruning"][0]["bytes"] == dense["bytes"]
    eq = [b for b in m["baselines"] if b.get("equal_bytes")]
    assert [b["method"] for b in eq] == ["plain k-means"] and eq[0]["bytes"] <= m["equal_bytes"]["budget_bytes"]
    assert any(b["method"] == "uniform quantization" and b["bits"] == 4 for b in m["baselines"])
    assert r["target"]["model"] == "pure_kan" and isinstance(r["target"]["met"], bool)
    assert report_data({"results": str(tmp_path / "r.json")}) == json.loads((tmp_path / "r.json").read_text())


def test_evaluate_user_npz_with_codebook_finetune(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 120)
    x = (rng.integers(0, 60, (120, 8, 8)) + (y * 60)[:, None, None]).astype(np.uint8)  # learnable
    np.savez(tmp_path / "d.npz", x=x, y=y)
    r = evaluate(dict(data=str(tmp_path / "d.npz"), epochs=2, models=["pure_kan"], ks=[4], sparsities=[0.3],
                      uniform_bits=[2], finetune_codebook=True, engine="eager", codebook_size=8))
    (m,) = r["models"]
    assert m["engine"] == "eager" and "eager requested" in m["engine_note"]
    assert r["dataset"]["train"] == 96 and r["dataset"]["input_shape"] == [1, 8, 8]
    methods = [b["method"] for b in m["baselines"]]
    assert "plain k-means + codebook fine-tune" in methods and "SHARe-KAN int + codebook fine-tune" in methods
    assert m["equal_bytes"]["calibration_images"] == 96
    assert m["table1"][2]["K"] == 8


def test_training_is_seeded_and_cached(cache):
    data = load_data(subset=64)
    a, info_a = train("pure_kan", data, epochs=1)
    assert not info_a["cached"] and checkpoint_path("pure_kan", data, 1, 0).exists()
    assert str(cache) in info_a["checkpoint"]
    b, info_b = train("pure_kan", data, epochs=1)
    assert info_b["cached"]
    fresh, _ = train("pure_kan", data, epochs=1, cache=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]) and torch.equal(v, fresh.state_dict()[k])


def test_storage_counts_and_baselines():
    model = small_kan()
    c, _ = compress_model(model, CompressionConfig(codebook_size=8))
    # 16*8 + 8*3 = 152 edges. Schema v2: outputs padded to panels of 16; per edge a uint8 index and
    # a uint16 word of the 6+4+5-bit gain, bias and base; one scale per padded output and field;
    # one knot row; two codebooks of 8 x 8 int8 + scales.
    assert M.edges(model) == 152
    per_layer = lambda n_in, n_out: (  # noqa: E731
        12 * 4 + math.ceil(n_out / 16) * 16 * n_in * (1 + 2) + 3 * math.ceil(n_out / 16) * 16 * 4 + 8 * 8 + 8 * 4)
    assert M.shared_bytes(c) == per_layer(16, 8) + per_layer(8, 3)
    pk, nbytes = M.plain_kmeans(model, 8)
    assert nbytes == M.plain_kmeans_bytes(model, 8)
    assert M.codebook_size_for_budget(model, M.plain_kmeans_bytes(model, 32)) == 32
    x = torch.rand(64, 16) * 2 - 1
    with torch.no_grad():
        ref = model(x)
        u8, _ = M.uniform_quantization(model, 8, base_bits=8)
        assert torch.allclose(u8(x), ref, atol=0.05 * ref.abs().max().item())
        pruned, pbytes = M.magnitude_prune(model, 0.5)
        zero_edges = [(m.base_weight == 0) & (m.spline_weight.abs().sum(-1) == 0) for m in pruned.layers]
        assert [int(z.sum()) for z in zero_edges] == [64, 12]
        assert pbytes < M.dense_bytes(model)
        assert pk(x).shape == ref.shape


def test_codebook_finetune_keeps_an_exportable_sharekan_model():
    data = load_data(subset=256)
    model = PureKAN([784, 8, 10], grid_size=5, spline_order=3).eval()
    c, _ = compress_model(model, CompressionConfig(codebook_size=16))
    x, y = data.calibration(size=128)
    ft = M.finetune_codebooks(c, x, y, epochs=1)
    layers = [m for m in ft.modules() if isinstance(m, SharedKANLinear)]
    assert len(layers) == 2 and all(m.codebook.dtype == torch.int8 for m in layers)
    assert not torch.equal(layers[0].codebook_scales, c.layers[0].codebook_scales)
    assert M.shared_bytes(ft) == M.shared_bytes(c)
    assert 0 <= M.accuracy(ft, data.x_test, data.y_test) <= 1


def test_user_npz_and_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (50, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 50))
    d = load_data(data=str(tmp_path / "d.npz"))
    assert (len(d.x_train), len(d.x_test)) == (40, 10) and d.x_train.shape[1:] == (1, 8, 8)
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1 and d.classes <= 3
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    f = load_data(data=str(tmp_path / "imgs"), image_size=8)
    assert (len(f.x_train), len(f.x_test), f.classes) == (8, 2, 2) or f.classes == 2
    assert f.x_train.shape[1:] == (1, 8, 8)
    with pytest.raises(ValueError, match="needs arrays x and y"):
        np.savez(tmp_path / "bad.npz", a=np.zeros(3))
        load_data(data=str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match="no such file"):
        load_data(data=str(tmp_path / "missing.npz"))


def test_user_checkpoints(tmp_path):
    data = load_data(subset=32)
    pure = PureKAN([784, 6, 10], grid_size=4, spline_order=2)
    torch.save(pure.state_dict(), tmp_path / "pure.pt")
    got, kind = load_checkpoint(str(tmp_path / "pure.pt"), data)
    assert kind == "pure_kan" and got.layers[0].grid_size == 4 and got.layers[0].spline_order == 2
    with torch.no_grad():
        assert torch.equal(got(data.x_test), pure.eval()(data.x_test))
    vision = VisionKAN(1, 28, 10, hidden=5)
    torch.save({"state_dict": vision.state_dict()}, tmp_path / "vision.pt")
    got, kind = load_checkpoint(str(tmp_path / "vision.pt"), data)
    assert kind == "vision_kan" and got.head.layers[0].out_features == 5
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(str(tmp_path / "junk.pt"), data)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither a pure KAN nor a Vision KAN"):
        load_checkpoint(str(tmp_path / "other.pt"), data)


def test_checkpoint_that_does_not_fit_the_data(tmp_path):
    torch.save(PureKAN([64, 4, 3], grid_size=3).state_dict(), tmp_path / "small.pt")
    with pytest.raises(ValueError, match="does not accept the data's inputs"):
        evaluate(dict(subset=20, checkpoint=str(tmp_path / "small.pt"), engine="eager"))


def test_bad_options():
    with pytest.raises(ValueError, match="--subset"):
        evaluate({"subset": 0})
    with pytest.raises(ValueError, match="unknown model"):
        evaluate({"subset": 10, "models": ["resnet"]})
    with pytest.raises(ValueError, match="not the output"):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write("{}")
        report_data({"results": f.name})


def test_unwritable_cache_runs_without_it(tmp_path, monkeypatch):
    """Issue 15.11: a HOME that cannot be written (here a regular file, which root cannot write
    under either) made eval abort with a raw OSError; now it runs uncached and says so once."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.delenv("LUTHAM_CACHE")
    monkeypatch.setenv("HOME", str(home))
    r = evaluate(dict(subset=64, epochs=1, models=["pure_kan"], ks=[16], sparsities=[0], uniform_bits=[4], threads=2, seed=0))
    notes = [w for w in r["warnings"] if "checkpoint cache" in w]
    assert notes == [f"ran without the checkpoint cache: cannot write {home}/.cache/lutham (Not a directory); "
                     "set LUTHAM_CACHE to a writable folder"], r["warnings"]
    assert r["models"][0]["training"]["cached"] is False
    assert not (home.parent / ".cache").exists()


def test_executorch_logs_stay_off_eval_stderr(tmp_path):
    """Issue 15.11: ExecuTorch's cpuinfo probing ("[cpuinfo_utils.cpp:71] Reading file ...") reached
    eval's stderr at the first lutham.pte run; now the runs log into the native-log file. A fresh
    process: the probing happens once per process."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "pte_accuracy.py"
    script.write_text("\n".join([
        "import torch",
        "from lutham.compress import CompressionConfig, compress_model",
        "from lutham.evaluation import methods as M",
        "from lutham.evaluation.train import PureKAN",
        "torch.manual_seed(0)",
        "model = compress_model(PureKAN([16, 8, 3], grid_size=5, spline_order=3).eval(), CompressionConfig())[0]",
        "x, y = torch.rand(40, 16), torch.randint(0, 3, (40,))",
        "print('accuracy', M.pte_accuracy(model, x, y, batch=20)[0])",
    ]))
    root = Path(__file__).resolve().parents[2]
    if not (root / "build" / "delegate" / "liblutham_backend.so").is_file():
        pytest.skip("LuthamBackend not built")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(root / "py_bridge")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("accuracy "), r.stdout
    assert "cpuinfo" not in r.stderr, r.stderr
