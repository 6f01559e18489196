"""lower/serialization/payload.py: the writer and the reference reader agree field for field."""

import numpy as np
import pytest
import torch

from helpers import _delegate_payloads, _lower, small_pair
from lutham.compress import CompressionConfig
from lutham.lower.partitioner import is_kan_linear
from lutham.lower.preprocess import layer_from_node
from lutham.lower.serialization.payload import SCHEMA_VERSION, read_payload, write_payload


def test_payload_round_trip_equals_what_was_written():
    config, _, compressed, _ = small_pair(compression=CompressionConfig(codebook_size=16, gain_bits=5, bias_bits=4, base_bits=6))
    edge = _lower(compressed, config)
    # Rebuild the LayerData of the first layer from the pre-lowering graph and compare.
    ep = torch.export.export(compressed, (config.example_input(),), strict=False)
    from executorch.exir import to_edge

    pre = to_edge(ep).exported_program()
    node = next(n for n in pre.graph_module.graph.nodes if is_kan_linear(n))
    layer, codebook = layer_from_node(pre, node)
    version, back = read_payload(write_payload(layer))
    assert version == SCHEMA_VERSION == 2
    for field in ("in_features", "out_features", "grid_size", "spline_order", "codebook_key", "codebook_size", "codebook_dim", "index_bits"):
        assert getattr(back, field) == getattr(layer, field), field
    assert np.array_equal(back.knots, layer.knots) and np.array_equal(back.indices, layer.indices)
    for q in ("gains", "biases", "base_weight"):
        a, b = getattr(layer, q), getattr(back, q)
        assert a.bits == b.bits and np.array_equal(a.values, b.values) and np.array_equal(a.scales, b.scales)
    assert (back.gains.bits, back.biases.bits, back.base_weight.bits) == (5, 4, 6)
    assert back.r2 == pytest.approx(compressed.heads[0].layers[0].r2, rel=1e-6)
    # The payloads inside the .pte are exactly those bytes.
    pte = edge.to_executorch().buffer
    f, payloads = _delegate_payloads(pte)
    assert write_payload(layer) in payloads
