"""Small models and exports shared by the Python tests (kept tiny so the suite stays fast)."""

from __future__ import annotations

import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.model.multihead import ModelConfig, build_model


def small_config(heads: int = 3, widths=(32, 8, 4), grid: int = 5, seed: int = 0, backbone: str = "none", batch: int = 1) -> ModelConfig:
    return ModelConfig(backbone=backbone, heads=heads, widths=list(widths), grid=grid, seed=seed, batch=batch)


def small_pair(config: ModelConfig | None = None, compression: CompressionConfig | None = None):
    """(config, dense model, compressed model, report)."""
    config = config or small_config()
    dense = build_model(config)
    compressed, report = compress_model(dense, compression or CompressionConfig(codebook_size=16))
    return config, dense, compressed, report


def export_bytes(model: torch.nn.Module, config: ModelConfig, delegate: bool) -> bytes:
    return to_executorch_bytes(model, config.example_input(), delegate)
