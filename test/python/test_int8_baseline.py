"""The Dense-int8-XNNPACK size: extrapolated from 1 head and the heads alone, against a real
export of every head."""

import pytest

from lutham.exporter.int8_baseline import dense_int8_xnnpack_size, folded_xnnpack_bytes
from lutham.model.multihead import ModelConfig, build_model


@pytest.mark.parametrize("backbone, widths", [("none", [256, 32, 4]), ("mobilenet_v3_small", [576, 16, 4])])
def test_extrapolated_int8_size_is_within_one_percent_of_a_real_export(backbone, widths):
    config = ModelConfig(backbone=backbone, heads=4, widths=widths, grid=5)
    model, example = build_model(config), config.example_input()
    estimate = dense_int8_xnnpack_size(model, example)
    assert estimate["method"].startswith("extrapolated from 1 head")
    real = len(folded_xnnpack_bytes(model, example, True))
    assert abs(estimate["file_bytes"] - real) <= 0.01 * real, (estimate, real)
