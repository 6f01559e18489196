"""lutham.api.export end to end on a small model (what `lutham export` runs)."""

import json
import os

import pytest

from lutham.api import export


def _opts(out, **kw):
    return {"backbone": "none", "heads": 3, "widths": [32, 8, 4], "grid": 5, "codebook_size": 16, "out": str(out)} | kw


def test_export_writes_both_files_and_a_truthful_report(tmp_path):
    stages = []
    report = export(_opts(tmp_path), lambda s, f: stages.append((s, f)))
    for name in ("dense", "lutham"):
        assert os.path.getsize(tmp_path / f"{name}.pte") == report[name]["file_bytes"]
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    assert report["lutham"]["delegates"] == 6 and report["lutham"]["codebook_segments"] == 2
    assert report["ratio"]["file"] == pytest.approx(report["dense"]["file_bytes"] / report["lutham"]["file_bytes"])
    # Dense KAN bytes: 3 heads x (32*8 + 8*4 edges) x (8 coefficients + scaler + base) x 4 B + grids.
    edges = 3 * (32 * 8 + 8 * 4)
    grids = 3 * (32 + 8) * (5 + 2 * 3 + 1) * 4
    assert report["dense"]["kan_bytes"] == edges * 10 * 4 + grids
    # The int8 baseline (3 heads: measured at 1 and 2 heads, extrapolated) is smaller than dense fp32.
    int8 = report["dense_int8_xnnpack"]
    assert int8["method"].startswith("extrapolated") and 0 < int8["file_bytes"] < report["dense"]["file_bytes"]
    assert report["max_batch"] == 1
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_options_fail_before_anything_is_written(tmp_path):
    export(_opts(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for bad, msg in [({"backbone": "vgg"}, "unknown backbone"), ({"heads": 0}, "--heads"),
                     ({"codebook_size": 70000}, "65536"), ({"weights": str(tmp_path / "nope.pt")}, "no such file"),
                     ({"backbone": "resnet18", "widths": [100, 4]}, "must start with 512"),
                     ({"out": str(tmp_path / "report.json")}, "not a directory")]:
        with pytest.raises(ValueError, match=msg):
            export(_opts(tmp_path) | bad)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_user_checkpoint_is_used(tmp_path):
    import torch

    from lutham.model.multihead import ModelConfig, build_model

    model = build_model(ModelConfig(backbone="none", heads=1, widths=[32, 8, 4], grid=5, seed=7))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    a = export(_opts(tmp_path / "a", heads=1, weights=str(tmp_path / "w.pt")))
    b = export(_opts(tmp_path / "b", heads=1, seed=7))
    assert (tmp_path / "a" / "dense.pte").read_bytes() == (tmp_path / "b" / "dense.pte").read_bytes()
    with pytest.raises(ValueError, match="does not fit"):
        export(_opts(tmp_path / "c", heads=1, widths=[16, 4], weights=str(tmp_path / "w.pt")))
