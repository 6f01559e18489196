"""Seed corpus for delegate/fuzz/payload_fuzzer: real payloads and codebooks of tiny models.

Each seed is one fuzzer input: a 4-byte little-endian payload length, the payload, then the
codebook (the harness's framing). The payloads and codebooks come from the project's own
path: compress_model, then export through LuthamPartitioner/LuthamBackend.preprocess, read
back and written again with serialization.payload write_payload / write_codebook (so the
seeds follow the schema whatever its version). A few variants of real layers (per-input
knots, other spline orders and bit widths) widen the starting points.

    PYTHONPATH=py_bridge python delegate/fuzz/make_corpus.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.model.multihead import ModelConfig, build_model
from lutham.lower.serialization.payload import (COMPUTE_INT8, LayerData, read_codebook, read_payload, write_codebook,
                                                write_payload)

# (model, compression): small enough that one kan_forward is microseconds.
CONFIGS = [
    (ModelConfig(backbone="none", heads=2, widths=[6, 4, 3], grid=5), CompressionConfig(codebook_size=8)),
    (ModelConfig(backbone="none", heads=1, widths=[5, 3], grid=3, order=2), CompressionConfig.fp32(codebook_size=6)),
    (ModelConfig(backbone="none", heads=1, widths=[4, 3], grid=4, order=1),
     CompressionConfig(codebook_size=5, codebook_bits=3, gain_bits=2, bias_bits=8, base_bits=7)),
    # K > 256: 9-bit indices.
    (ModelConfig(backbone="none", heads=1, widths=[24, 16], grid=2), CompressionConfig(codebook_size=300)),
]


def seed_bytes(payload: bytes, codebook: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload + codebook


def exported_layers(model_cfg: ModelConfig, comp: CompressionConfig) -> list[tuple[LayerData, bytes]]:
    """(layer, codebook bytes) of every LuthamBackend delegate of the exported model."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    torch.manual_seed(model_cfg.seed)
    model = build_model(model_cfg).eval()
    compressed, _ = compress_model(model, comp)
    pte = deserialize_pte_binary(to_executorch_bytes(compressed.eval(), model_cfg.example_input(), True))
    named = {key: bytes(pte.named_data.buffers[e.buffer_index]) for key, e in pte.named_data.pte_data.items()}
    out = []
    for blob in pte.program.backend_delegate_data:
        _, layer = read_payload(bytes(blob.data))
        out.append((layer, named[layer.codebook_key]))
    return out


def per_input_knots(layer: LayerData) -> LayerData:
    """The same layer with a different (still increasing) knot row per input."""
    scale = 1.0 + 0.25 * np.arange(layer.in_features, dtype=np.float32)[:, None]
    return dataclasses.replace(layer, knots=(layer.knots * scale).astype(np.float32))


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    for model_cfg, comp in CONFIGS:
        for layer, codebook in exported_layers(model_cfg, comp):
            words = read_codebook(codebook)
            seeds.append(seed_bytes(write_payload(layer), write_codebook(words)))
            seeds.append(seed_bytes(write_payload(per_input_knots(layer)), write_codebook(words)))
            if layer.gains.bits != 32 and layer.codebook_size <= 256:  # the int8 mode's grouped records
                int8 = dataclasses.replace(layer, compute=COMPUTE_INT8)
                seeds.append(seed_bytes(write_payload(int8), write_codebook(words)))
                seeds.append(seed_bytes(write_payload(per_input_knots(int8)), write_codebook(words)))
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()  # libFuzzer's own corpus naming
        (out / name).write_bytes(seed)
    print(f"make_corpus: {len(seeds)} seeds in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: make_corpus.py OUT_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
