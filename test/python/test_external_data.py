"""Codebooks in a .ptd (export --external-data) and programs that share one .ptd (--codebooks-from):
the files written, outputs equal to the all-in-one programs, and the errors of a missing or wrong .ptd."""

from __future__ import annotations

import json

import pytest
import torch

from lutham.api import export
from lutham.lower.serialization.external_data import read_codebooks, read_named_data
from lutham.run import runtime

SMALL = dict(backbone="none", widths=[16, 8, 4], grid=5, codebook_size=16, int8_baseline=False)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """a: 2 heads with --external-data; a_all: the same export all-in-one; b: 3 other heads
    (seed 1) reusing a's codebooks, with external data and all-in-one."""
    root = tmp_path_factory.mktemp("external_data")
    a = root / "a"
    reports = {
        "a": export(SMALL | {"heads": 2, "seed": 0, "out": str(a), "external_data": True}),
        "a_all": export(SMALL | {"heads": 2, "seed": 0, "out": str(root / "a_all")}),
    }
    for name, external in (("b", True), ("b_all", False)):
        reports[name] = export(SMALL | {"heads": 3, "seed": 1, "out": str(root / name), "external_data": external,
                                        "codebooks_from": str(a / "lutham.ptd")})
    return root, reports


def _inputs(heads_input: int = 16, seed: int = 5) -> list[torch.Tensor]:
    return [torch.rand((1, heads_input), generator=torch.Generator().manual_seed(seed)) * 2.2 - 1.1]


def test_external_data_export_writes_the_codebooks_to_lutham_ptd(programs):
    root, reports = programs
    a = root / "a"
    assert sorted(p.name for p in a.iterdir()) == ["dense.pte", "lutham.ptd", "lutham.pte", "report.json"]
    report = json.loads((a / "report.json").read_text())
    assert report["lutham"]["external_data"] == {"path": "lutham.ptd", "file_bytes": (a / "lutham.ptd").stat().st_size}
    codebooks = read_codebooks(a / "lutham.ptd")
    assert len(codebooks) == 2  # one per depth, shared by the heads
    assert report["lutham"]["codebook_bytes"] == sum(len(b) for b in read_named_data(a / "lutham.ptd").values())
    assert report["lutham"]["codebook_segments"] == 2
    # the .pte keeps no codebook; the all-in-one file holds the same codebooks itself
    all_in_one = reports["a_all"]["lutham"]
    assert all_in_one["codebook_bytes"] == report["lutham"]["codebook_bytes"]
    assert report["lutham"]["file_bytes"] < all_in_one["file_bytes"]
    assert report["layers"] == reports["a_all"]["layers"]


def test_program_with_its_ptd_gives_the_all_in_one_outputs(programs):
    root, _ = programs
    x = _inputs()
    split = runtime.run_program(root / "a" / "lutham.pte", x, data=root / "a" / "lutham.ptd")
    whole = runtime.run_program(root / "a_all" / "lutham.pte", x)
    assert torch.equal(split[0], whole[0])


def test_codebooks_from_reuses_the_given_codebooks_so_two_programs_share_one_ptd(programs):
    root, reports = programs
    shared = read_codebooks(root / "a" / "lutham.ptd")
    b = reports["b"]
    assert set(b["codebooks_from"]["reused"].values()) <= set(shared)
    assert b["codebooks_from"]["path"] == "../a/lutham.ptd"
    # b's own .ptd holds only codebooks of a's: the same bytes under the same keys
    own = read_named_data(root / "b" / "lutham.ptd")
    assert all(own[k] == read_named_data(root / "a" / "lutham.ptd")[k] for k in own)
    x = _inputs(seed=9)
    with_a = runtime.run_program(root / "b" / "lutham.pte", x, data=root / "a" / "lutham.ptd")
    whole = runtime.run_program(root / "b_all" / "lutham.pte", x)
    assert torch.equal(with_a[0], whole[0])
    assert with_a[0].shape == (1, 3, 4)


def test_reused_codebooks_still_fit_the_new_heads(programs):
    # trained on other heads (seed 0), they still reconstruct these (seed 1): a real fit per layer
    _, reports = programs
    assert all(0.5 < layer["r2"] <= 1.0 for layer in reports["b"]["layers"])


def test_missing_ptd_is_one_line_naming_the_flag(programs):
    root, _ = programs
    with pytest.raises(runtime.RunError, match=r"needs codebook lutham/codebook/sha256-[0-9a-f]{64} from a \.ptd file .*pass --data FILE"):
        runtime.run_file(root / "a" / "lutham.pte", repeat=1)


def test_wrong_ptd_is_one_line_naming_the_missing_codebook(programs, tmp_path):
    root, _ = programs
    other = tmp_path / "other"
    export(SMALL | {"heads": 1, "seed": 7, "out": str(other), "external_data": True})
    with pytest.raises(runtime.RunError, match=r"other/lutham\.ptd does not hold codebook .*not the \.ptd this program was exported with"):
        runtime.run_file(root / "a" / "lutham.pte", repeat=1, data=other / "lutham.ptd")
    with pytest.raises(runtime.RunError, match=r"is not a \.ptd file"):
        runtime.run_file(root / "a" / "lutham.pte", repeat=1, data=root / "a" / "dense.pte")


def test_corrupted_ptd_is_refused_by_the_codebook_reader(programs, tmp_path):
    root, _ = programs
    data = bytearray((root / "a" / "lutham.ptd").read_bytes())
    data[-20] ^= 0x5A  # inside the last codebook's values
    bad = tmp_path / "bad.ptd"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"does not match its SHA-256"):
        read_codebooks(bad)
    with pytest.raises(ValueError, match=r"is not a \.ptd file"):
        read_codebooks(root / "a" / "lutham.pte")
