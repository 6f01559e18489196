"""scripts/k_sweep.py (the K sweep of BENCHMARKS.md): its rows carry the fields the table needs,
bits per edge come from the lowered program's payload bytes, R^2 grows with K in every codebook
group, a two-level codebook is checked against exact assignment, and the numbers repeat."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from lutham.model.multihead import ModelConfig, build_model

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "k_sweep.py"
KS = (16, 256, 4096)  # 4096: the two-level codebook for the 4,608 edges of layers.0


def _script():
    spec = importlib.util.spec_from_file_location("k_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep():
    k_sweep = _script()
    cfg = ModelConfig(backbone="none", heads=2, widths=[48, 48, 3], grid=5, seed=0, batch=4)
    model = build_model(cfg).eval()
    example = cfg.example_input()
    rows = [k_sweep.sweep_row("heads", model, k, 0, example, check_sample=2000) for k in KS]
    return k_sweep, model, example, rows


def test_rows_have_the_table_fields_and_bits_from_payload_bytes(sweep):
    _, _, _, rows = sweep
    for k, row in zip(KS, rows):
        assert row["K"] == k and row["edges"] == 2 * (48 * 48 + 48 * 3)
        assert {"index_bits", "bits_per_edge", "bits_per_edge_with_codebook", "r2", "payload_bytes", "codebook_bytes",
                "output_error", "two_level_check", "seconds"} <= set(row)
        assert row["seconds"]["compress"] >= 0
        assert [g["group"] for g in row["codebooks"]] == ["layers.0", "layers.1"]
        big = row["codebooks"][0]
        assert big["K"] == k and row["index_bits"] == big["index_bits"] == math.ceil(math.log2(k))
        assert row["bits_per_edge"] == round(8 * row["payload_bytes"] / row["edges"], 4) > 0
        assert row["bits_per_edge_with_codebook"] > row["bits_per_edge"]
    # layers.1 (288 edges) is clamped to one codeword per edge (exact) at K = 4096
    assert rows[2]["codebooks"][1]["K"] == 288 and rows[2]["codebooks"][1]["exact"]
    # the codebook (K int8 words + a scale each) grows with K
    assert rows[0]["codebook_bytes"] < rows[1]["codebook_bytes"] < rows[2]["codebook_bytes"]


def test_r2_grows_with_k_in_every_codebook(sweep):
    _, _, _, rows = sweep
    for group in range(2):
        r2 = [row["codebooks"][group]["r2"] for row in rows]
        assert r2 == sorted(r2) and r2[0] < r2[-1], r2
        assert all(0 < v <= 1 for v in r2)
    assert [row["r2"] for row in rows] == sorted(row["r2"] for row in rows)


def test_two_level_codebook_is_checked_against_exact_assignment(sweep):
    _, _, _, rows = sweep
    assert rows[0]["two_level_check"] == [] and rows[1]["two_level_check"] == []
    [check] = rows[2]["two_level_check"]
    assert check["group"] == "layers.0" and check["sample_edges"] == 2000
    # exact assignment to the same codebook is the best one can do with it (up to the gain refit)
    assert check["r2_exact"] >= check["r2_two_level"] - 1e-6
    assert abs(check["r2_cost"] - (check["r2_exact"] - check["r2_two_level"])) < 1e-5
    assert 0 < check["same_codeword"] <= 1


def test_same_seed_same_numbers_and_markdown(sweep):
    k_sweep, model, example, rows = sweep
    again = k_sweep.sweep_row("heads", model, KS[1], 0, example, check_sample=2000)
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert strip(again) == strip(rows[1])
    table = k_sweep.markdown({"models": {"heads": {"info": {}, "rows": rows}}})
    assert table.count("\n| ") == len(KS) + 1 and "4,096 (2-level), 288 (exact)" in table
