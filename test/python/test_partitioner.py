"""lower/: the partitioner takes every KAN layer and nothing else, codebooks are stored once per
key in named data, dense.pte runs like PyTorch, same seed gives the same bytes."""

import hashlib

import numpy as np
import torch
from executorch.exir._serialize._program import deserialize_pte_binary

from helpers import _delegate_payloads, _lower, export_bytes, small_config, small_pair
from lutham.compress import CompressionConfig
from lutham.compress.layer import SharedKANLinear
from lutham.lower.partitioner import is_kan_linear
from lutham.lower.serialization.payload import read_codebook, read_payload
from lutham.model.multihead import ModelConfig


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
