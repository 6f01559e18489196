"""Issue 15.9: the same export twice gives a byte-identical report.json, wherever --out is: no
timing in the file (the CLI prints it) and the .pte paths relative to --out. The first export is
the session's (conftest.tiny_export: 3 heads, so the extrapolated int8 baseline is in the report
too); the second one is made here, into another directory."""

from __future__ import annotations

import json

from helpers import TINY_EXPORT
from lutham.api import export


def test_report_json_is_byte_identical_across_runs_and_directories(tiny_export, tmp_path):
    a_dir, a, _ = tiny_export
    b_dir = tmp_path / "elsewhere" / "b"
    export(TINY_EXPORT | {"out": str(b_dir)})
    ra, rb = (a_dir / "report.json").read_bytes(), (b_dir / "report.json").read_bytes()
    assert ra == rb
    report = json.loads(ra)
    assert "seconds" not in report
    assert report["dense"]["path"] == "dense.pte" and report["lutham"]["path"] == "lutham.pte"
    for name in ("dense.pte", "lutham.pte"):
        assert (a_dir / name).read_bytes() == (b_dir / name).read_bytes()
    assert json.loads(json.dumps(a)) == report  # what export() returns is what it wrote
