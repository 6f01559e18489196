"""run/runtime.py's run_file, what `lutham run` calls: files that are not programs, ExecuTorch's log
kept off the terminal, NaN/Inf inputs, .npy inputs and outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import inputs_for, rel_l2
from lutham.run import runtime

needs_backend = pytest.mark.skipif(not runtime.library_path().is_file(), reason="build/delegate not built (scripts/build-delegate.sh)")


def test_run_refuses_non_pte_files_before_executorch(tmp_path, int8_model):
    path = int8_model.lutham_pte
    (tmp_path / "random.pte").write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    flipped = bytearray(path.read_bytes())
    flipped[6] ^= 0x01  # "ET12" -> "ET02"
    (tmp_path / "flipped.pte").write_bytes(bytes(flipped))
    for name, msg in [("random.pte", "is not a .pte file"), ("flipped.pte", r"identifier b'ET02'"), ("missing.pte", "no such file")]:
        with pytest.raises(runtime.RunError, match=msg):
            runtime.run_file(tmp_path / name)
    with pytest.raises(runtime.RunError, match="not a regular file"):
        runtime.run_file(tmp_path)


@needs_backend
def test_run_keeps_executorch_log_off_stderr_and_reports_it_in_the_error(tmp_path, int8_model, capfd):
    path = int8_model.lutham_pte
    data = bytearray(path.read_bytes())
    at = data.find(b"LTHM")  # the first LuthamBackend payload's identifier
    data[at:at + 4] = b"XXXX"
    (tmp_path / "bad-payload.pte").write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(runtime.RunError, match=r"cannot load .*bad-payload\.pte: .*\(.+\)$"):
        runtime.run_file(tmp_path / "bad-payload.pte", repeat=1)
    info = runtime.run_file(path, repeat=1)
    assert info["non_finite_outputs"] == 0
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@needs_backend
def test_run_reports_non_finite_inputs_and_writes_output_exactly_there(tmp_path, int8_model):
    path, config = int8_model.lutham_pte, int8_model.cfg
    x = config.example_input().numpy().copy()
    x[0, :3] = [np.nan, np.inf, -np.inf]
    np.save(tmp_path / "x.npy", x)
    info = runtime.run_file(path, [str(tmp_path / "x.npy")], str(tmp_path / "y.out"), repeat=1)
    assert info["non_finite_inputs"] == [3] and info["non_finite_outputs"] > 0
    assert np.isnan(info["sum"])
    assert (tmp_path / "y.out").is_file() and not (tmp_path / "y.out.npy").exists()
    assert np.load(tmp_path / "y.out").shape == tuple(info["outputs"][0])


@needs_backend

def test_run_file_reads_npy_inputs_and_writes_the_output(int8_model, tmp_path):
    x = inputs_for(int8_model.cfg, 9)
    np.save(tmp_path / "run_x.npy", x.numpy())
    info = runtime.run_file(str(int8_model.lutham_pte), [str(tmp_path / "run_x.npy")], str(tmp_path / "run_y.npy"), repeat=2)
    with torch.no_grad():
        ref = int8_model.compressed(x)
    assert info["outputs"] == [list(ref.shape)] and info["repeat"] == 2
    assert rel_l2(torch.from_numpy(np.load(tmp_path / "run_y.npy")), ref) < 1e-5


@needs_backend
def test_run_file_runs_one_method_and_names_the_others(per_head_model, int8_model, tmp_path):
    """`lutham run --method head_1 --input features.npy`: that head's logits, forward's slice;
    an unknown method or a wrong input shape is one line naming the method."""
    x = inputs_for(int8_model.cfg, 4)
    np.save(tmp_path / "features.npy", x.numpy())
    full = runtime.run_file(per_head_model, [str(tmp_path / "features.npy")], str(tmp_path / "all.npy"), repeat=1)
    head = runtime.run_file(per_head_model, [str(tmp_path / "features.npy")], str(tmp_path / "h1.npy"), repeat=2, method="head_1")
    assert full["method"] == "forward" and head["method"] == "head_1"
    assert head["outputs"] == [[1, 5]] and full["outputs"] == [[1, 3, 5]]
    assert np.array_equal(np.load(tmp_path / "h1.npy"), np.load(tmp_path / "all.npy")[:, 1])
    with pytest.raises(runtime.RunError, match=rf"^{per_head_model} has no method 'head_3' \(it has: forward, head_0 \.\. head_2\)$"):
        runtime.run_file(per_head_model, repeat=1, method="head_3")
    with pytest.raises(runtime.RunError, match=r"has no method 'backbone' \(it has: forward\)$"):
        runtime.run_file(int8_model.lutham_pte, repeat=1, method="backbone")
    np.save(tmp_path / "narrow.npy", np.zeros((1, 12), np.float32))  # the hidden width, not the head's input
    with pytest.raises(runtime.RunError, match=r"narrow\.npy has shape \(1, 12\), input 0 needs \(1, 32\) \(method head_2\)$"):
        runtime.run_file(per_head_model, [str(tmp_path / "narrow.npy")], repeat=1, method="head_2")
