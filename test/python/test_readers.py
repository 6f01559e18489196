"""The C++ payload and codebook readers (delegate/runtime/payload.cpp, codebook_cache.cpp): every
corruption is refused at load (in-process and by lutham_runner) with a message naming it, and no
byte flip crashes."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT, RUNNER, inputs_for, live_codebooks, rel_l2
from lutham.lower.serialization import payload as payload_mod
from lutham.lower.serialization.payload import read_payload, write_payload
from lutham.run import runtime

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)


# ---------------------------------------------------------------- corrupted payloads


def _pte_with(src: Path, dst: Path, edit_payload=None, edit_codebook=None, delegate: int = 0) -> Path:
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    if edit_payload is not None:
        blob = pte.program.backend_delegate_data[delegate]
        blob.data = edit_payload(bytes(blob.data))
    if edit_codebook is not None:
        nd = pte.named_data
        nd.buffers = [edit_codebook(bytes(b)) for b in nd.buffers]
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def _pte_with_rekeyed_codebook(src: Path, dst: Path, edit_codebook) -> Path:
    """Edits codebook 0 and renames it to the content-hash key of its new bytes, in the named
    data and in every payload that uses it."""
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    nd = pte.named_data
    old_key = next(k for k, e in nd.pte_data.items() if e.buffer_index == 0)
    nd.buffers[0] = edit_codebook(bytes(nd.buffers[0]))
    new_key = payload_mod.codebook_key(nd.buffers[0])
    nd.pte_data[new_key] = nd.pte_data.pop(old_key)
    for blob in pte.program.backend_delegate_data:
        _, layer = read_payload(bytes(blob.data))
        if layer.codebook_key == old_key:
            blob.data = write_payload(dataclasses.replace(layer, codebook_key=new_key))
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def _relayer(**changes):
    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        return write_payload(dataclasses.replace(layer, **changes) if changes else layer)

    return edit


def _with_layer(fn):
    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        return write_payload(fn(layer))

    return edit


def _index_ge_k(layer):
    idx = layer.indices.copy()
    idx[0, 0] = layer.codebook_size + 36  # fits in index_bits + 1 bits, >= K
    return dataclasses.replace(layer, indices=idx, index_bits=layer.index_bits + 1)


def _patched(name, replacement):
    """An edit that re-writes the payload with one writer function of serialization.payload replaced."""

    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        original = getattr(payload_mod, name)
        setattr(payload_mod, name, replacement(original))
        try:
            return write_payload(layer)
        finally:
            setattr(payload_mod, name, original)

    return edit


def _flip_middle(data: bytes) -> bytes:
    # The middle of a payload is edge panel data: a flipped bit there still verifies.
    b = bytearray(data)
    b[len(b) // 2] ^= 0x10
    return bytes(b)


def _nan_scale(layer):
    b = layer.biases
    scales = b.scales.copy()
    scales[1] = np.nan
    return dataclasses.replace(layer, biases=dataclasses.replace(b, scales=scales))


def _too_few_index_bits(layer):
    return dataclasses.replace(layer, index_bits=2, indices=layer.indices & 3)


def _unsorted_knots(layer):
    knots = layer.knots.copy()
    knots[0, [2, 3]] = knots[0, [3, 2]]
    return dataclasses.replace(layer, knots=knots)


CORRUPTIONS = {
    "bad_identifier": (lambda d: d[:4] + b"XXXX" + d[8:], "identifier is not LTHM"),
    "truncated": (lambda d: d[: len(d) // 2], "verification"),
    "empty": (lambda d: b"", "too small"),
    "index_ge_k": (_with_layer(_index_ge_k), ">= codebook_size"),
    "wrong_in_features": (_relayer(in_features=33), "panel data has"),  # knots are one shared row: the panels disagree first
    "wrong_grid_size": (_relayer(grid_size=4), "knots has"),
    "wrong_codebook_dim": (_relayer(codebook_dim=9), "codebook_dim"),
    "scales_short": (_patched("_padded_scales", lambda f: lambda q, n: f(q, n)[:-1]), "scales has"),
    "nan_scale": (_with_layer(_nan_scale), "non-finite scale"),
    "checksum_mismatch": (_flip_middle, "checksum mismatch"),
    "checksum_wrong": (_patched("payload_checksum", lambda f: lambda *a: f(*a) ^ 1), "checksum mismatch"),
    "panel_width": (_patched("PANEL_WIDTH", lambda w: 8), "panel width 8"),
    "record_truncated": (_patched("encode_panels", lambda f: lambda layer: (lambda rb, d: (rb, d[:-rb]))(*f(layer))), "panel data has"),
    "index_bits_too_small": (_with_layer(_too_few_index_bits), "index_bits"),
    "unsorted_knots": (_with_layer(_unsorted_knots), "strictly increasing"),
    "missing_codebook": (_relayer(codebook_key="lutham/codebook/none"), "not found"),
    "codebook_size_too_small": (_relayer(codebook_size=63), "is >= codebook_size"),
    "codebook_size_mismatch": (_relayer(codebook_size=65, index_bits=7), "named data holds"),
}


def _expect_load_failure(path: Path, capfd, message: str):
    with pytest.raises(Exception) as err:
        program, method = runtime.load_method(path)
    log = capfd.readouterr().err
    assert "LuthamBackend: invalid" in log, log[-2000:]
    assert message in log, log[-2000:]
    return err


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_payload_fails_cleanly(int8_model, tmp, capfd, name):
    edit, message = CORRUPTIONS[name]
    bad = _pte_with(int8_model.lutham_pte, tmp / f"bad_{name}.pte", edit_payload=edit)
    _expect_load_failure(bad, capfd, message)


def test_schema_version_rejected(int8_model, tmp, capfd):
    future = max(payload_mod.KNOWN_SCHEMA_VERSIONS) + 1
    bad = _pte_with(int8_model.lutham_pte, tmp / "bad_version.pte", edit_payload=_patched("SCHEMA_VERSION", lambda v: future))
    _expect_load_failure(bad, capfd, f"schema_version {future}")


def _as_int8(name, replacement):
    """The payload re-written in the int8 mode with one writer function (or constant) replaced."""

    def edit(data: bytes) -> bytes:
        _, layer = read_payload(data)
        original = getattr(payload_mod, name)
        setattr(payload_mod, name, replacement(original))
        try:
            return write_payload(dataclasses.replace(layer, compute=payload_mod.COMPUTE_INT8))
        finally:
            setattr(payload_mod, name, original)

    return edit


@pytest.mark.parametrize("name,edit,message", [
    # an int8 payload that a version 2 reader would misread (its records are grouped)
    ("int8_as_version_2", _as_int8("SCHEMA_VERSION_INT8", lambda v: 2), "uses version 3's int8 mode"),
    ("int8_ungrouped", _as_int8("INT8_GROUP", lambda g: 1), "must have group 4"),
    # the checksum covers the compute byte: a flipped mode is refused
    ("int8_checksum_without_mode", _as_int8("payload_checksum", lambda f: lambda k, p, s, c=0: f(k, p, s)), "checksum mismatch"),
])
def test_bad_int8_payloads_fail_cleanly(int8_model, tmp, capfd, name, edit, message):
    bad = _pte_with(int8_model.lutham_pte, tmp / f"bad_{name}.pte", edit_payload=edit)
    _expect_load_failure(bad, capfd, message)


def test_int8_payload_loads(int8_model, tmp):
    # The same edit without a fault loads and runs: the faults above are what is refused.
    good = _pte_with(int8_model.lutham_pte, tmp / "good_int8.pte", edit_payload=_as_int8("SCHEMA_VERSION", lambda v: v))
    x = int8_model.cfg.example_input()
    y = runtime.run_program(good, [x])[0]
    assert y.shape == int8_model.compressed(x).shape and torch.isfinite(y).all()


@pytest.mark.parametrize(
    "name,edit,message",
    [
        ("cb_identifier", lambda d: d[:4] + b"ZZZZ" + d[8:], "codebook identifier"),
        ("cb_truncated", lambda d: d[: len(d) - 40], "verification"),
    ],
)
def test_corrupted_codebook_fails_cleanly(int8_model, tmp, capfd, name, edit, message):
    # Re-keyed to the edited bytes' hash, as if the writer had produced them: the hash check
    # passes and the structural checks must refuse them.
    bad = _pte_with_rekeyed_codebook(int8_model.lutham_pte, tmp / f"bad_{name}.pte", edit)
    _expect_load_failure(bad, capfd, message)


def test_corrupted_codebook_without_rekey_fails_on_its_hash(int8_model, tmp, capfd):
    bad = _pte_with(int8_model.lutham_pte, tmp / "bad_cb_identifier_hash.pte",
                    edit_codebook=lambda d: d[:4] + b"ZZZZ" + d[8:])
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")


# ---------------------------------------------------------------- codebook integrity


def _flip_codebook_value_byte(index: int):
    """Flips one bit of one byte inside the packed codeword values of codebook `index`: the
    buffer still passes every structural check, only its content hash gives it away."""

    def edit(buffers: list[bytes]) -> list[bytes]:
        from lutham.compress.quant import pack_bits
        from lutham.lower.serialization.payload import read_codebook

        blob = bytearray(buffers[index])
        words = read_codebook(bytes(blob))
        packed = pack_bits(words.values, words.bits)
        at = bytes(blob).find(packed)
        assert at > 0 and bytes(blob).find(packed, at + 1) == -1
        blob[at + len(packed) // 2] ^= 0x04
        return [bytes(blob) if i == index else b for i, b in enumerate(buffers)]

    return edit


def _pte_with_codebooks(src: Path, dst: Path, edit_buffers) -> Path:
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    pte.named_data.buffers = edit_buffers([bytes(b) for b in pte.named_data.buffers])
    dst.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return dst


def test_corrupted_codebook_byte_fails_init(int8_model, tmp, capfd):
    bad = _pte_with_codebooks(int8_model.lutham_pte, tmp / "cb_flip.pte", _flip_codebook_value_byte(0))
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    assert live_codebooks() == 0  # the entries of the refused program's good codebook died with it


def test_good_program_after_corrupted_one_gets_its_own_codebook(int8_model, tmp, capfd):
    """A corrupted program loaded first must not leave its codebook in the shared cache for a
    later good program with the same key, nor borrow a good program's live entry."""
    assert live_codebooks() == 0
    x = inputs_for(int8_model.cfg, 5)
    with torch.no_grad():
        ref = int8_model.compressed(x)
    bad = _pte_with_codebooks(int8_model.lutham_pte, tmp / "cb_flip_first.pte", _flip_codebook_value_byte(1))
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    loads = runtime.codebook_cache_stats()["loads"]
    program, method = runtime.load_method(int8_model.lutham_pte)
    assert runtime.codebook_cache_stats()["loads"] - loads == 2  # both codebooks fetched and checked afresh
    good = method.execute([x])[0]
    assert rel_l2(good, ref) < 1e-5, rel_l2(good, ref)
    # The good program's entries are live now: the corrupted one is still refused.
    _expect_load_failure(bad, capfd, "bytes do not match the key's sha256")
    assert torch.equal(method.execute([x])[0], good)
    del method, program
    assert live_codebooks() == 0


def test_random_byte_flips_never_crash(int8_model, tmp):
    """Single-byte corruptions anywhere in a payload: load fails cleanly or runs; no crash.
    Runs in a subprocess so that a crash is reported as a failure, not as a dead pytest."""
    script = f"""
import random, sys
sys.path.insert(0, {str(ROOT / 'py_bridge')!r})
import torch
from lutham.run import runtime
from test_runtime_helpers import flip_pte
ok = fail = 0
rng = random.Random(0)
x = torch.zeros({list(int8_model.cfg.example_input().shape)!r})
for trial in range(60):
    path = flip_pte({str(int8_model.lutham_pte)!r}, {str(tmp)!r} + '/flip.pte', rng)
    try:
        prog, m = runtime.load_method(path)
        m.execute([x]); ok += 1
    except Exception:
        fail += 1
print('ok', ok, 'fail', fail)
"""
    helpers = tmp / "test_runtime_helpers.py"
    helpers.write_text(
        "import random\n"
        "from pathlib import Path\n"
        "from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary\n"
        "def flip_pte(src, dst, rng):\n"
        "    pte = deserialize_pte_binary(Path(src).read_bytes())\n"
        "    blob = pte.program.backend_delegate_data[rng.randrange(len(pte.program.backend_delegate_data))]\n"
        "    d = bytearray(blob.data)\n"
        "    for _ in range(rng.choice([1, 1, 2, 4])):\n"
        "        d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)\n"
        "    blob.data = bytes(d)\n"
        "    Path(dst).write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))\n"
        "    return dst\n"
    )
    r = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", script],
        cwd=tmp, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{tmp}:{ROOT / 'py_bridge'}", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ok" in r.stdout


@pytest.mark.skipif(not RUNNER.is_file(), reason="lutham_runner not built")
def test_runner_rejects_corrupted_payload(int8_model, tmp):
    bad = _pte_with(int8_model.lutham_pte, tmp / "runner_bad.pte", edit_payload=CORRUPTIONS["index_ge_k"][0])
    r = subprocess.run([str(RUNNER), "--model", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "LuthamBackend: invalid payload" in r.stderr
    assert "loading method 'forward' failed" in r.stderr
