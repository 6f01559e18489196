"""Byte counts of a model's KAN tensors and of the parts of a .pte file (what reports and
benchmarks compare)."""

from __future__ import annotations

import hashlib

import torch

from .lower.serialization.external_data import named_data_of
from .lower.serialization.payload import CODEBOOK_KEY_PREFIX
from .model.kan import KANLinear


def kan_parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes of the dense KAN layers' tensors (grid, base_weight, spline_weight, spline_scaler)."""
    total = 0
    for m in model.modules():
        if isinstance(m, KANLinear):
            total += sum(t.numel() * t.element_size() for t in (m.grid, m.base_weight, m.spline_weight, m.spline_scaler))
    return total


def lutham_part_bytes(pte: bytes, ptd: bytes | None = None) -> dict:
    """Bytes of the LuthamBackend payloads (each stored payload once) and of the (deduplicated)
    codebooks in a .pte, or in its .ptd (`ptd`: the external data the codebooks were moved to);
    delegates counts every LuthamBackend delegate of every method."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte_file = deserialize_pte_binary(pte)
    program = pte_file.program
    payload = 0
    delegates = 0
    stored: set = set()  # a payload used by several methods (export --methods per-head) is in the file once
    for plan in program.execution_plan:
        for d in plan.delegates:
            if d.id == "LuthamBackend":
                delegates += 1
                ref = d.processed
                if int(ref.location) == 0:
                    data = program.backend_delegate_data[ref.index].data
                    digest = hashlib.sha256(data).digest()  # the serializer stores equal payloads once
                    if digest not in stored:
                        stored.add(digest)
                        payload += len(data)
                elif ("segment", ref.index) not in stored:
                    stored.add(("segment", ref.index))
                    payload += program.segments[ref.index].size
    # Codebook keys are content hashes: one key per distinct codebook, one buffer per key.
    if ptd is not None:
        blobs = named_data_of(ptd)
    else:
        named = pte_file.named_data
        blobs = {k: named.buffers[e.buffer_index] for k, e in named.pte_data.items()} if named else {}
    codebook_blobs = [b for k, b in blobs.items() if k.startswith(CODEBOOK_KEY_PREFIX)]
    codebooks = sum(len(b) for b in codebook_blobs)
    codebook_segments = len(codebook_blobs)
    return {"payload_bytes": payload, "codebook_bytes": codebooks, "codebook_segments": codebook_segments, "delegates": delegates}


def delegate_counts(pte: bytes) -> dict[str, int]:
    """Number of delegates per backend id in a serialized program."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    counts: dict[str, int] = {}
    for plan in deserialize_pte_binary(pte).program.execution_plan:
        for d in plan.delegates:
            counts[d.id] = counts.get(d.id, 0) + 1
    return counts

