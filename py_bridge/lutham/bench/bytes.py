"""Bytes a program reads per inference, from its .pte: the constants it holds, each read once
per run (the activations are left out: at batch 1 they are a few KB)."""

from __future__ import annotations

from ..measure import lutham_part_bytes


def program_read_bytes(pte: bytes) -> dict:
    """{"read_bytes", "read_bytes_method"} (+ LuthamBackend's payload/codebook bytes for lutham.pte).

    LUTHAM: its payloads + codebooks (what the kernel streams). Otherwise: the program's constant
    tensors + every delegate's blob (XNNPACK: its packed weights or graph) + the named data
    (XNNPACK's weights: int8 + scales, or fp32)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    part = lutham_part_bytes(pte)
    if part["delegates"]:
        return {"read_bytes": part["payload_bytes"] + part["codebook_bytes"], "codebook_bytes": part["codebook_bytes"],
                "read_bytes_method": "LuthamBackend payloads + codebooks"}
    pte_file = deserialize_pte_binary(pte)
    program = pte_file.program
    constants = sum(len(b.storage) for b in program.constant_buffer)
    delegates = 0
    for plan in program.execution_plan:
        for d in plan.delegates:
            ref = d.processed
            delegates += (len(program.backend_delegate_data[ref.index].data) if int(ref.location) == 0
                          else program.segments[ref.index].size)
    named = pte_file.named_data
    named_bytes = sum(len(b) for b in named.buffers) if named else 0
    return {"read_bytes": constants + delegates + named_bytes,
            "read_bytes_method": "constant tensors + delegate blobs + named data of the .pte"}
