"""lutham.api.export end to end on a small model (what `lutham export` runs), and the options it
refuses."""

import json
import os
import shutil

import pytest

from helpers import NAMES, TINY_EXPORT
from helpers import _opts as _small_opts
from lutham.api import export


def _opts(out, **kw):
    return TINY_EXPORT | {"out": str(out)} | kw


def test_export_writes_both_files_and_a_truthful_report(tiny_export):
    tmp_path, report, stages = tiny_export
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


def test_bad_options_fail_before_anything_is_written(tiny_export, tmp_path):
    for name in NAMES:  # an output set from an earlier export
        shutil.copy(tiny_export[0] / name, tmp_path / name)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for bad, msg in [({"backbone": "vgg"}, "unknown backbone"), ({"heads": 0}, "--heads"),
                     ({"codebook_size": 70000}, "65536"), ({"weights": str(tmp_path / "nope.pt")}, "no such file"),
                     ({"backbone": "resnet18", "widths": [100, 4]}, "must start with 512"),
                     ({"out": str(tmp_path / "report.json")}, "not a directory")]:
        with pytest.raises(ValueError, match=msg):
            export(_opts(tmp_path) | bad)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before




def test_fp32_with_bit_widths_and_models_too_big_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--gain-bits cannot be used with --fp32"):
        export(_small_opts(tmp_path, int8=False, gain_bits=3))
    # 2048*512 + 512*25 edges of 12 coefficients + scaler + base, grids of 16 points per input.
    dense_gb = 4 * (2048 * 512 * 14 + 512 * 25 * 14 + (2048 + 512) * 16) * 10**6 / 1e9
    with pytest.raises(ValueError, match=rf"1000000 head\(s\) of widths 2048,512,25 are {dense_gb:,.1f} GB of float32 weights; "
                                         rf"exporting them needs about {dense_gb * 3.5:,.1f} GB of memory"):
        export(_small_opts(tmp_path, heads=10**6, widths=None, grid=9))
    assert list(tmp_path.iterdir()) == []
