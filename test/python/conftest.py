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


@pytest.fixture(scope="session")
def per_head_model(tmp, int8_model):
    """int8_model's compressed model lowered with `export --methods per-head --etrecord`: head_0..head_2
    and forward in one program (no backbone method: --backbone none). Its path; the ETRecord is
    int8.per-head.etrecord beside it."""
    from lutham.exporter.pipeline import lower_program
    from lutham.files import write_atomic
    from lutham.lower.lowering import etrecord_bytes

    path = tmp / "int8.per-head.pte"
    program = lower_program(int8_model.compressed, int8_model.cfg.example_input(), delegate=True, methods="per-head", etrecord=True)
    write_atomic(path, program.buffer)
    write_atomic(path.with_suffix(".etrecord"), etrecord_bytes(program))
    return path


@pytest.fixture(scope="session")
def conv_backbone_model(tmp):
    """2 KAN heads (64 -> 8 -> 3) on a small conv backbone (two convolutions, 20 kB of float32
    weights, on XNNPACK), lowered with both --methods: (model, input, forward-only .pte, per-head .pte)."""
    import torch
    from torch import nn

    from lutham.compress import compress_model
    from lutham.exporter.pipeline import lower_program
    from lutham.files import write_atomic
    from lutham.model.multihead import MultiHeadKAN

    torch.manual_seed(0)
    model = MultiHeadKAN(ModelConfig(backbone="none", heads=2, widths=[64, 8, 3], grid=5))
    model.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 64, 3, padding=1), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
    compressed, _ = compress_model(model.eval(), CompressionConfig(codebook_size=32))
    compressed.eval()
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1
    paths = {}
    for methods in ("forward", "per-head"):
        paths[methods] = tmp / f"conv.{methods}.pte"
        write_atomic(paths[methods], lower_program(compressed, x, delegate=True, methods=methods).buffer)
    return compressed, x, paths["forward"], paths["per-head"]
