"""Test helper: exports small Dense/SHARe-KAN .pte files and dumps what ExecuTorch's own
Python deserializer (and LUTHAM's Python payload reader) see in them, as JSON on stdout.

    python make_pte.py '<json spec>'
spec: {"out_dir": "...", "models": [{"name": "small", "backbone": "none", "heads": 3,
       "widths": [64, 16, 5], "grid": 5, "codebook_size": 64}]}
Writes <out_dir>/<name>-dense.pte and <name>-lutham.pte; prints {"<file>": facts, ...}.
spec {"facts": ["a.pte", ...]}: only the facts of files that exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "py_bridge")))


def facts(path: str) -> dict:
    from executorch.exir._serialize import _program as P
    from executorch.exir.schema import DataLocation

    from lutham.lower.serialization.payload import read_codebook, read_payload

    data = open(path, "rb").read()
    eh = P._get_extended_header(data)
    program_size = eh.program_size if eh else len(data)
    base = eh.segment_base_offset if eh else 0
    raw = P._flatbuffer_to_program(data[:program_size])  # segments as stored
    restored = P.deserialize_pte_binary(data)  # segments moved back inline

    def seg_bytes(i: int) -> bytes:
        s = raw.segments[i]
        return data[base + s.offset : base + s.offset + s.size]

    plans = []
    for p, (ep, rep) in enumerate(zip(raw.execution_plan, restored.program.execution_plan)):
        delegates = []
        for d, (dl, rdl) in enumerate(zip(ep.delegates, rep.delegates)):
            loc = "segment" if dl.processed.location == DataLocation.SEGMENT else "inline"
            payload = seg_bytes(dl.processed.index) if loc == "segment" else bytes(raw.backend_delegate_data[dl.processed.index].data)
            # The deserializer's own view of the payload (restored inline).
            restored_payload = bytes(restored.program.backend_delegate_data[rdl.processed.index].data)
            assert restored_payload == payload
            entry = {"id": dl.id, "location": loc, "index": dl.processed.index, "bytes": len(payload)}
            if dl.id == "LuthamBackend":
                version, layer = read_payload(payload)
                entry["layer"] = {
                    "schema_version": version,
                    "in": layer.in_features, "out": layer.out_features,
                    "grid": layer.grid_size, "order": layer.spline_order,
                    "K": layer.codebook_size, "dim": layer.codebook_dim, "index_bits": layer.index_bits,
                    "codebook_key": layer.codebook_key,
                    "bits": [layer.gains.bits, layer.biases.bits, layer.base_weight.bits],
                    "r2": None if layer.r2 != layer.r2 else float(layer.r2),
                    "indices": layer.indices.reshape(-1).tolist()[:32],
                }
            delegates.append(entry)
        plans.append({
            "name": ep.name,
            "values": len(ep.values),
            "inputs": list(ep.inputs),
            "outputs": list(ep.outputs),
            "operators": [f"{o.name}.{o.overload}" if o.overload else o.name for o in ep.operators],
            "instructions": sum(len(c.instructions) for c in ep.chains),
            "delegates": delegates,
            "non_const_buffer_sizes": list(ep.non_const_buffer_sizes),
        })

    named = []
    nd_out = restored.named_data
    for n in raw.named_data or []:
        blob = seg_bytes(n.segment_index)
        entry = {"key": n.key, "segment_index": n.segment_index, "bytes": len(blob)}
        if nd_out is not None:  # the deserializer's view of the same entry
            buf = nd_out.buffers[nd_out.pte_data[n.key].buffer_index]
            entry["deserializer_bytes"] = len(bytes(buf.buffer) if hasattr(buf, "buffer") else bytes(buf))
        if blob[4:8] == b"LTCB":
            q = read_codebook(blob)
            entry["codebook"] = {"size": int(q.values.shape[0]), "dim": int(q.values.shape[1]), "bits": q.bits}
        named.append(entry)

    cs = raw.constant_segment
    return {
        "file_bytes": len(data),
        "program_size": program_size,
        "segment_base_offset": base,
        "segment_data_size": eh.segment_data_size if eh else 0,
        "segments": [{"offset": s.offset, "size": s.size} for s in (raw.segments or [])],
        "constant_segment": {"segment_index": cs.segment_index, "offsets": list(cs.offsets)},
        "inline_delegate_data": len(raw.backend_delegate_data),
        "plans": plans,
        "named_data": named,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    # Keep stdout for the JSON: anything the libraries print goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        if "facts" in spec:  # files exported elsewhere (the tests' session export, through the CLI)
            result = {path: facts(path) for path in spec["facts"]}
        else:
            result = export(spec)
    sys.stdout.write(json.dumps(result))


def export(spec: dict) -> dict:
    from lutham.compress import CompressionConfig, compress_model
    from lutham.exporter.pipeline import to_executorch_bytes
    from lutham.files import write_atomic
    from lutham.model.multihead import ModelConfig, build_model

    result = {}
    out_dir = spec["out_dir"]
    for m in spec["models"]:
        cfg = ModelConfig(backbone=m.get("backbone", "none"), heads=m["heads"], widths=m["widths"], grid=m.get("grid", 5),
                          image_size=m.get("image_size", 224))
        model = build_model(cfg)
        compressed, _ = compress_model(model, CompressionConfig(codebook_size=m.get("codebook_size", 64)))
        x = cfg.example_input()
        for kind, net, delegate in (("dense", model, False), ("lutham", compressed, True)):
            path = os.path.join(out_dir, f"{m['name']}-{kind}.pte")
            write_atomic(path, to_executorch_bytes(net, x, delegate))
            result[path] = facts(path)
    return result


if __name__ == "__main__":
    main()
