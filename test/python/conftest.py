"""Fixtures shared by the Python tests, built once per session: exports are most of the suite's
time, so the tests that only read a program or a report share these."""

from __future__ import annotations

import pytest

from helpers import TINY_EXPORT, build
from lutham.compress import CompressionConfig
from lutham.model.multihead import ModelConfig


@pytest.fixture(scope="session")
def tmp(tmp_path_factory):
    """A directory for the runtime tests' programs and their edited copies."""
    return tmp_path_factory.mktemp("programs")


@pytest.fixture(scope="session")
def int8_model(tmp):
    """3 heads sharing a codebook per depth, default integer storage: 6 delegates, 2 codebooks;
    lutham.pte and dense.pte."""
    cfg = ModelConfig(backbone="none", heads=3, widths=[32, 12, 5], grid=5)
    return build(tmp, "int8", cfg, CompressionConfig(codebook_size=64), dense=True)


@pytest.fixture(scope="session")
def fp32_model(tmp):
    cfg = ModelConfig(backbone="none", heads=2, widths=[24, 8, 4], grid=6)
    return build(tmp, "fp32", cfg, CompressionConfig.fp32(codebook_size=48))


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """One `lutham export` (lutham.api.export) of a 3-head model: (directory, report, progress calls)."""
    from lutham.api import export

    out = tmp_path_factory.mktemp("tiny_export")
    stages = []
    report = export(TINY_EXPORT | {"out": str(out)}, lambda s, f: stages.append((s, f)))
    return out, report, stages


@pytest.fixture(scope="session")
def etrecord_export(tmp_path_factory):
    """`lutham export --etrecord` of 3 heads of 64 -> 16 -> 5 (6 LuthamBackend layers): (directory, report)."""
    from lutham.api import export

    out = tmp_path_factory.mktemp("etrecord_export")
    report = export({"backbone": "none", "heads": 3, "widths": [64, 16, 5], "grid": 5, "codebook_size": 64,
                     "int8_baseline": False, "etrecord": True, "out": str(out)})
    return out, report
