"""`lutham run --profile`: ExecuTorch's ETDump of the runs, read with its Inspector and the
ETRecord of `export --etrecord`, has one row per KAN layer (LuthamBackend's own delegate events,
named by the debug-handle map preprocess returns) whose times add up to the time inside
LuthamBackend; profiling changes no output bit."""

from __future__ import annotations

import numpy as np
import pytest

from lutham.run import runtime
from lutham.run.profile import BACKEND_NAME, profile_table

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)

LAYERS = {f"heads.{h}.layers.{l}" for h in range(3) for l in range(2)}


def test_profile_has_one_row_per_kan_layer_adding_up_to_the_heads_time(etrecord_export, tmp_path):
    out, report = etrecord_export
    assert (out / "lutham.etrecord").stat().st_size == report["lutham"]["etrecord"]["file_bytes"]
    etdump = tmp_path / "run.etdp"
    r = runtime.run_file(out / "lutham.pte", repeat=20, seed=1, profile=etdump, output=str(tmp_path / "p.npy"))
    p = r["profile"]
    assert etdump.is_file() and p["etrecord"] == str(out / "lutham.etrecord")
    rows = [row for row in p["rows"] if row["backend"] == BACKEND_NAME]
    assert sorted(row["layer"] for row in rows) == sorted(LAYERS) and p["lutham_layers"] == 6
    assert all(row["calls"] == 20 and row["tables_edges_ms"] is not None for row in rows)
    # Each head's first layer reads the same input with the same grid and codebook: only the
    # first of them computes the bases (LuthamBackend's shared preparation), so only it logs "basis".
    assert sorted(row["layer"] for row in rows if row["basis_ms"] is not None) == \
        ["heads.0.layers.0", "heads.0.layers.1", "heads.1.layers.1", "heads.2.layers.1"]
    # The layer events lie inside LuthamBackend::execute, which lutham_execute_stats times per run.
    assert len(p["lutham_run_ms"]) == 20
    assert p["lutham_median_ms"] <= r["head_ms"] + 1e-6
    assert p["lutham_median_ms"] >= 0.5 * r["head_ms"], (p["lutham_median_ms"], r["head_ms"])
    assert abs(sum(row["median_ms"] for row in rows) - p["lutham_median_ms"]) <= 0.5 * p["lutham_median_ms"]
    assert 0 < p["lutham_share"] <= 1
    plain = runtime.run_file(out / "lutham.pte", repeat=2, seed=1, output=str(tmp_path / "q.npy"))
    assert "profile" not in plain
    assert np.array_equal(np.load(tmp_path / "p.npy"), np.load(tmp_path / "q.npy"))  # same bits with a tracer


def test_profile_without_etrecord_names_layers_by_delegate(etrecord_export, tmp_path):
    out, _ = etrecord_export
    pte = tmp_path / "lutham.pte"  # no lutham.etrecord beside this copy
    pte.write_bytes((out / "lutham.pte").read_bytes())
    p = runtime.run_file(pte, repeat=3, profile=tmp_path / "run.etdp")["profile"]
    assert p["etrecord"] is None
    assert [row["layer"] for row in p["rows"] if row["backend"] == BACKEND_NAME] == [f"{BACKEND_NAME} delegate {i}" for i in range(6)]


def test_profile_bad_paths_are_one_line_errors(etrecord_export, tmp_path):
    out, _ = etrecord_export
    with pytest.raises(runtime.RunError, match="cannot write --etdump .*no such directory"):
        runtime.run_file(out / "lutham.pte", repeat=1, profile=tmp_path / "missing" / "run.etdp")
    with pytest.raises(runtime.RunError, match="--etrecord: no such file"):
        runtime.run_file(out / "lutham.pte", repeat=1, profile=tmp_path / "run.etdp", etrecord=tmp_path / "none.etrecord")
    (tmp_path / "garbage.etdp").write_bytes(b"\x07" * 64)
    with pytest.raises(ValueError, match="Inspector cannot read .*garbage.etdp"):
        profile_table(tmp_path / "garbage.etdp", None)


def test_etrecord_is_byte_identical_for_the_same_inputs():
    """ETRecord.save stamps times and the graphs carry Python object ids: lowering fixes both."""
    import torch

    from lutham.compress import CompressionConfig, compress_model
    from lutham.lower import lowering
    from lutham.model.multihead import ModelConfig, build_model

    cfg = ModelConfig(backbone="none", heads=2, widths=[16, 8, 4], grid=5)
    torch.manual_seed(0)
    compressed, _ = compress_model(build_model(cfg).eval(), CompressionConfig(codebook_size=16))
    records = [lowering.lower_with_etrecord(lowering.export_program(compressed.eval(), cfg.example_input()),
                                            lowering.partitioners(True, True))[2] for _ in range(2)]
    assert records[0] == records[1]


def test_profile_of_one_method_of_a_per_head_program_names_its_layers(per_head_model, tmp_path):
    """ExecuTorch 1.5.1's Inspector reads only "forward" of a multi-method ETRecord: run --profile
    --method head_1 hands it head_1's graph, so the rows are head_1's layers, by name."""
    etrecord = per_head_model.with_suffix(".etrecord")
    p = runtime.run_file(per_head_model, repeat=3, method="head_1", profile=tmp_path / "h.etdp", etrecord=etrecord)["profile"]
    assert sorted(row["layer"] for row in p["rows"] if row["backend"] == BACKEND_NAME) == ["heads.1.layers.0", "heads.1.layers.1"]
    p = runtime.run_file(per_head_model, repeat=2, profile=tmp_path / "f.etdp", etrecord=etrecord)["profile"]
    assert sorted(row["layer"] for row in p["rows"] if row["backend"] == BACKEND_NAME) == sorted(LAYERS)
