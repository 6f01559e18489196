"""Lowering: the partitioner, the payload round trip, named-data codebooks, dense parity."""

import hashlib

import numpy as np
import pytest
import torch
from executorch.exir import to_edge_transform_and_lower
from executorch.exir._serialize._program import deserialize_pte_binary

from lutham.lower.preprocess import LuthamBackend, layer_from_node
from lutham.compress import CompressionConfig
from lutham.files import write_atomic
from lutham.model.multihead import ModelConfig
from lutham.compress.layer import SharedKANLinear
from lutham.lower.partitioner import LuthamPartitioner, is_kan_linear
from lutham.lower.serialization.payload import read_codebook, read_payload, write_payload
from lutham.lower.serialization.payload import SCHEMA_VERSION

from helpers import export_bytes, small_config, small_pair


def _lower(model, config):
    ep = torch.export.export(model, (config.example_input(),), strict=False)
    return to_edge_transform_and_lower(ep, partitioner=[LuthamPartitioner()])


def _delegate_payloads(pte: bytes):
    f = deserialize_pte_binary(pte)
    program = f.program
    out = []
    for d in program.execution_plan[0].delegates:
        assert d.id == "LuthamBackend"
        ref = d.processed
        if int(ref.location) == 0:
            out.append(bytes(program.backend_delegate_data[ref.index].data))
        else:
            seg = program.segments[ref.index]
            out.append(None if seg is None else seg)
    return f, out


def test_partitioner_takes_every_kan_layer_and_nothing_else():
    config = small_config(heads=2, widths=(16, 6, 3), backbone="none")
    _, _, compressed, _ = small_pair(config)
    n_kan = sum(isinstance(m, SharedKANLinear) for m in compressed.modules())
    edge = _lower(compressed, config)
    gm = edge.exported_program().graph_module
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    delegated = [n for n in calls if "executorch_call_delegate" in str(n.target)]
    assert len(delegated) == n_kan == 4
    assert not any(is_kan_linear(n) for n in calls), "a KAN layer was left outside the delegate"
    # What stays outside is the glue (stacking the heads' outputs: cat + view, getitem), no KAN math.
    outside = {str(n.target) for n in calls} - {str(delegated[0].target)}
    assert all(any(op in t for op in ("aten.cat", "view_copy", "getitem")) for t in outside), outside
    # Each lowered module holds exactly one kan_linear and nothing else.
    for name, sub in gm.named_children():
        if name.startswith("lowered_module"):
            inner = [n for n in sub.original_module.graph.nodes if n.op == "call_function"]
            assert len(inner) == 1 and is_kan_linear(inner[0])


def test_partitioner_leaves_a_backbone_to_executorch():
    config = ModelConfig(backbone="resnet18", heads=1, widths=[512, 4], grid=3, image_size=32)
    _, _, compressed, _ = small_pair(config)
    edge = _lower(compressed, config)
    gm = edge.exported_program().graph_module
    calls = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert sum("executorch_call_delegate" in t for t in calls) == 1
    assert any("convolution" in t for t in calls)


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


def test_three_heads_store_exactly_one_codebook_segment():
    config = small_config(heads=3, widths=(32, 4))  # one KAN layer per head
    _, _, compressed, _ = small_pair(config)
    pte = export_bytes(compressed, config, delegate=True)
    f, payloads = _delegate_payloads(pte)
    assert len(payloads) == 3
    keys = {read_payload(p)[1].codebook_key for p in payloads}
    assert len(keys) == 1
    named = f.named_data
    assert list(named.pte_data) == list(keys) and len(named.buffers) == 1
    blob = named.buffers[0]
    assert keys.pop() == "lutham/codebook/sha256-" + hashlib.sha256(blob).hexdigest()
    words = read_codebook(blob)
    assert np.array_equal(words.values, compressed.heads[0].layers[0].codebook.numpy())


def test_scope_layer_stores_one_codebook_per_layer():
    config = small_config(heads=3, widths=(32, 4))
    _, _, compressed, _ = small_pair(config, CompressionConfig(codebook_size=16, scope="layer"))
    f, _ = _delegate_payloads(export_bytes(compressed, config, delegate=True))
    assert len(f.named_data.buffers) == 3


def test_dense_pte_runs_in_executorch_like_pytorch():
    from executorch.runtime import Runtime

    config = small_config(batch=2)
    _, dense, _, _ = small_pair(config)
    pte = export_bytes(dense, config, delegate=False)
    program = Runtime.get().load_program(pte)
    x = config.example_input()
    y = program.load_method("forward").execute([x])[0]
    torch.testing.assert_close(y, dense(x), rtol=1e-5, atol=1e-6)
    plan = deserialize_pte_binary(pte).program.execution_plan[0]
    assert len(plan.non_const_buffer_sizes) >= 2 and plan.non_const_buffer_sizes[1] > 0  # memory-planned


def test_same_seed_gives_byte_identical_files():
    config = small_config()
    _, _, a, _ = small_pair(config)
    _, _, b, _ = small_pair(config)
    assert export_bytes(a, config, True) == export_bytes(b, config, True)
    _, _, c, _ = small_pair(small_config(seed=1))
    assert export_bytes(c, config, True) != export_bytes(a, config, True)


def test_write_atomic_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "x.pte"
    write_atomic(target, b"old")

    with pytest.raises(TypeError):
        write_atomic(target, object())  # fails while writing
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pte"]
