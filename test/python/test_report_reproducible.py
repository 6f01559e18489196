"""Issue 15.9: the same export twice gives a byte-identical report.json, wherever --out is: no
timing in the file (the CLI prints it) and the .pte paths relative to --out."""

from __future__ import annotations

import json

from lutham.api import export

OPTS = {"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4, "codebook_size": 8}


def test_report_json_is_byte_identical_across_runs_and_directories(tmp_path):
    a = export({**OPTS, "out": str(tmp_path / "a")})
    export({**OPTS, "out": str(tmp_path / "elsewhere" / "b")})
    ra, rb = (tmp_path / "a" / "report.json").read_bytes(), (tmp_path / "elsewhere" / "b" / "report.json").read_bytes()
    assert ra == rb
    report = json.loads(ra)
    assert "seconds" not in report
    assert report["dense"]["path"] == "dense.pte" and report["lutham"]["path"] == "lutham.pte"
    for name in ("dense.pte", "lutham.pte"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "elsewhere" / "b" / name).read_bytes()
    assert json.loads(json.dumps(a)) == report  # what export() returns is what it wrote
