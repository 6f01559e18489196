"""lutham.api.export end to end on a small model (what `lutham export` runs), and the options it
refuses."""

import json
import os
import shutil

import pytest
import torch

from helpers import NAMES, TINY_EXPORT
from helpers import _opts as _small_opts
from lutham.api import export


def _opts(out, **kw):
    return TINY_EXPORT | {"out": str(out)} | kw


def test_export_writes_both_files_and_a_truthful_report(tiny_export):
    tmp_path, report, stages = tiny_export
    for name in ("dense", "lutham"):
        assert os.path.getsize(tmp_path / f"{name}.pte") == report[name]["file_bytes"]
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    assert report["lutham"]["delegates"] == 6 and report["lutham"]["codebook_segments"] == 2
    assert report["ratio"]["file"] == pytest.approx(report["dense"]["file_bytes"] / report["lutham"]["file_bytes"])
    # Dense KAN bytes: 3 heads x (32*8 + 8*4 edges) x (8 coefficients + scaler + base) x 4 B + grids.
    edges = 3 * (32 * 8 + 8 * 4)
    grids = 3 * (32 + 8) * (5 + 2 * 3 + 1) * 4
    assert report["dense"]["kan_bytes"] == edges * 10 * 4 + grids
    # The int8 baseline (3 heads: measured at 1 and 2 heads, extrapolated) is smaller than dense fp32.
    int8 = report["dense_int8_xnnpack"]
    assert int8["method"].startswith("extrapolated") and 0 < int8["file_bytes"] < report["dense"]["file_bytes"]
    assert report["max_batch"] == 1
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_options_fail_before_anything_is_written(tiny_export, tmp_path):
    for name in NAMES:  # an output set from an earlier export
        shutil.copy(tiny_export[0] / name, tmp_path / name)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for bad, msg in [({"backbone": "vgg"}, "unknown backbone"), ({"heads": 0}, "--heads"),
                     ({"codebook_size": 70000}, "65536"), ({"weights": str(tmp_path / "nope.pt")}, "no such file"),
                     ({"backbone": "resnet18", "widths": [100, 4]}, "must start with 512"),
                     ({"out": str(tmp_path / "report.json")}, "not a directory")]:
        with pytest.raises(ValueError, match=msg):
            export(_opts(tmp_path) | bad)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before




def test_fp32_with_bit_widths_and_models_too_big_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--gain-bits cannot be used with --fp32"):
        export(_small_opts(tmp_path, int8=False, gain_bits=3))
    # 2048*512 + 512*25 edges of 12 coefficients + scaler + base, grids of 16 points per input.
    dense_gb = 4 * (2048 * 512 * 14 + 512 * 25 * 14 + (2048 + 512) * 16) * 10**6 / 1e9
    with pytest.raises(ValueError, match=rf"1000000 head\(s\) of widths 2048,512,25 are {dense_gb:,.1f} GB of float32 weights; "
                                         rf"exporting them needs about {dense_gb * 3.5:,.1f} GB of memory"):
        export(_small_opts(tmp_path, heads=10**6, widths=None, grid=9))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --methods per-head


def _stored_parts(pte_path):
    """(named data {key: bytes}, distinct LuthamBackend payloads, LuthamBackend delegates per method) of a .pte."""
    import hashlib

    from executorch.exir._serialize._program import deserialize_pte_binary

    f = deserialize_pte_binary(pte_path.read_bytes())
    named = {k: bytes(f.named_data.buffers[e.buffer_index]) for k, e in f.named_data.pte_data.items()} if f.named_data else {}
    payloads, per_method = set(), {}
    for plan in f.program.execution_plan:
        lutham = [d for d in plan.delegates if d.id == "LuthamBackend"]
        per_method[plan.name] = len(lutham)
        payloads |= {hashlib.sha256(f.program.backend_delegate_data[d.processed.index].data).digest() for d in lutham}
    return named, payloads, per_method


def test_per_head_methods_give_forwards_outputs_bit_for_bit(int8_model, per_head_model):
    """head_k on the features is forward's k-th head exactly, and forward is the single-method
    file's forward; --backbone none has no backbone method (the heads read the input itself)."""
    from executorch.runtime import Runtime

    from helpers import inputs_for
    from lutham.run import runtime

    runtime.load_backend()
    program = Runtime.get().load_program(per_head_model)
    assert program.method_names == {"forward", "head_0", "head_1", "head_2"}
    single = Runtime.get().load_program(int8_model.lutham_pte).load_method("forward")
    methods = {name: program.load_method(name) for name in program.method_names}
    for seed in (1, 2):
        x = inputs_for(int8_model.cfg, seed)  # past the grid range too
        y = methods["forward"].execute([x])[0]
        assert y.shape == (1, 3, 5) and torch.equal(y, single.execute([x])[0])
        for k in range(3):
            assert torch.equal(methods[f"head_{k}"].execute([x])[0], y[:, k])


def test_per_head_stores_every_payload_and_codebook_once(int8_model, per_head_model):
    from lutham.measure import lutham_part_bytes

    named_1, payloads_1, delegates_1 = _stored_parts(int8_model.lutham_pte)
    named, payloads, delegates = _stored_parts(per_head_model)
    assert delegates == {"forward": 6, "head_0": 2, "head_1": 2, "head_2": 2} and delegates_1 == {"forward": 6}
    assert named == named_1 and len(named) == 2  # the two codebooks, once
    assert payloads == payloads_1  # head_k's layers are forward's: the same 6 payloads
    pte = per_head_model.read_bytes()
    parts, parts_1 = lutham_part_bytes(pte), lutham_part_bytes(int8_model.lutham_pte.read_bytes())
    assert parts == parts_1 | {"delegates": 12}
    for blob in named.values():  # in the file's bytes, once each
        assert pte.count(blob) == 1
    # What the extra methods add is their plans (instructions, values, memory plans), no data.
    growth = len(pte) - int8_model.lutham_pte.stat().st_size
    assert 0 < growth < 0.05 * (parts["payload_bytes"] + parts["codebook_bytes"]) + 3 * 1024, growth


def test_per_head_backbone_method_and_one_copy_of_the_backbone(conv_backbone_model):
    """backbone (image -> features) and head_k (features -> logits) compose to forward; the
    backbone's XNNPACK weights (named data under their SHA-256) are stored once for both methods."""
    from executorch.runtime import Runtime

    from lutham.run import runtime

    model, x, forward_only, per_head = conv_backbone_model
    runtime.load_backend()
    program = Runtime.get().load_program(per_head)
    assert program.method_names == {"backbone", "forward", "head_0", "head_1"}
    y = program.load_method("forward").execute([x])[0]
    features = program.load_method("backbone").execute([x])[0]
    assert features.shape == (1, 64)
    torch.testing.assert_close(features, model.backbone(x), rtol=1e-5, atol=1e-6)  # XNNPACK vs eager
    assert torch.equal(y, Runtime.get().load_program(forward_only).load_method("forward").execute([x])[0])
    for k in range(2):
        assert torch.equal(program.load_method(f"head_{k}").execute([features])[0], y[:, k])
    named_1, payloads_1, _ = _stored_parts(forward_only)
    named, payloads, _ = _stored_parts(per_head)
    backbone_bytes = sum(p.numel() * 4 for p in model.backbone.parameters())
    assert named == named_1 and sum(len(b) for b in named.values()) > backbone_bytes  # weights + codebooks
    assert payloads == payloads_1
    growth = per_head.stat().st_size - forward_only.stat().st_size
    assert 0 < growth < 0.2 * backbone_bytes, (growth, backbone_bytes)


def test_methods_option_is_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"^--methods must be one of forward, per-head, got 'heads'$"):
        export(_small_opts(tmp_path, methods="heads"))
    with pytest.raises(ValueError, match=r"^--methods per-head needs the built backbone \+ heads model"):
        export(_small_opts(tmp_path, methods="per-head", model=str(tmp_path / "net.py:build")))
    assert list(tmp_path.iterdir()) == []
