"""K sweep (issue 16 item 4, our answer to the SHARe-KAN paper's Figure 3): for each codebook size
K, compress a model with the library (lutham.compress.compress_model, default bits and scope) and
report index bits, bits per edge from the actual LuthamBackend payload bytes of the lowered
lutham.pte, R^2, accuracy (Fashion-MNIST models), and the compression stage's wall time.

  PYTHONPATH=py_bridge .venv/bin/python scripts/k_sweep.py --models pure_kan,vision_kan,heads \\
      --ks 16,64,256,1024,4096,16384,65536 --out k_sweep.json --markdown k_sweep.md
  ... --models heads --heads-ks 128 --add --out k_sweep.json   # one more row into the same files

Models: `heads` is the seeded model of `lutham export --backbone none --heads N` (--heads,
--widths; no data, so no accuracy: the relative L2 error of its outputs on seeded inputs instead);
`pure_kan` and `vision_kan` are `lutham eval`'s Fashion-MNIST models (trained, or loaded from the
checkpoint cache, by lutham.evaluation.train). Accuracy is on the 10,000 test images twice: PyTorch
eager on the compressed model, and the lowered lutham.pte run through ExecuTorch with the C++
LuthamBackend (lutham.evaluation.methods.pte_accuracy; needs build/delegate).

Where the codebook is two-level (K >= TWO_LEVEL_MIN_CODEBOOK, not exact), a seeded sample of the
group's edges is also assigned exactly (all K words of the same stored codebook, flat search) and
both R^2 are reported (gains refit by least squares in float, as scripts/two_level_r2.py does).

Everything but the "seconds" of each row is a function of the models, K and --seed (same
numbers on every run); the JSON and Markdown are rewritten after each row (temp file + rename).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from lutham.compress import CompressionConfig, compress_model, relative_output_error
from lutham.compress.edges import LayerEdges
from lutham.compress.gsb import TWO_LEVEL_MIN_CODEBOOK, canonical_shapes, edge_biases, edge_gains, r_squared
from lutham.compress.model import _kan_groups
from lutham.compress.quant import Quantized
from lutham.compress.two_level_check import exact_nearest_codewords
from lutham.files import write_atomic

DEFAULT_KS = "16,64,256,1024,4096,16384,65536"
FMNIST = ("pure_kan", "vision_kan")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stored(layer) -> np.ndarray:
    """A SharedKANLinear's codebook as the runtime reads it (dequantized)."""
    return Quantized(layer.codebook.numpy(), layer.codebook_scales.numpy(), layer.codebook_bits).dequantize()


def two_level_check(dense, compressed, scope: str, group: str, sample: int, seed: int) -> dict:
    """R^2 of a seeded sample of the group's edges with the indices compress_model chose (two-level
    search) and with exact assignment to the same stored codebook; gains refit in float."""
    members = dict(_kan_groups(dense, scope))[group]
    edges = LayerEdges([m for _, m in members])
    by_name = dict(compressed.named_modules())
    indices = np.concatenate([by_name[name].indices.numpy().reshape(-1) for name, _ in members]).astype(np.int64)
    stored = _stored(by_name[members[0][0]])
    rng = np.random.default_rng(seed + 1)
    pick = np.sort(rng.choice(edges.n, min(sample, edges.n), replace=False))
    coeffs = edges.gather(pick)
    biases = edge_biases(coeffs)
    energy = np.einsum("kd,kd->k", stored, stored)

    def r2(found: np.ndarray) -> float:
        gains = edge_gains(coeffs, biases, stored, energy, found)
        return r_squared(coeffs, biases[:, None] + gains[:, None] * stored[found])

    chosen = indices[pick]
    exact = exact_nearest_codewords(canonical_shapes(coeffs), stored)
    r2_two, r2_exact = r2(chosen), r2(exact)
    return dict(group=group, sample_edges=int(len(pick)), r2_two_level=round(r2_two, 6), r2_exact=round(r2_exact, 6),
                r2_cost=round(r2_exact - r2_two, 6), same_codeword=round(float(np.mean(chosen == exact)), 4))


def sweep_row(name: str, dense, k: int, seed: int, example: torch.Tensor, data=None, check_sample: int = 50_000,
              scope: str = "heads") -> dict:
    """One row of the sweep: `dense` compressed at codebook size k with the library's defaults."""
    from lutham.evaluation.methods import accuracy, edges as edge_count, pte_accuracy
    from lutham.exporter.pipeline import to_executorch_bytes
    from lutham.measure import lutham_part_bytes

    config = CompressionConfig(codebook_size=k, scope=scope, seed=seed)
    seconds = {}
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clamp warning is in report.warnings
        compressed, report = compress_model(dense, config)
    seconds["compress"] = round(time.monotonic() - started, 2)
    n = edge_count(dense)
    groups = [dict(group=l.name, edges=l.edges, K=l.codebook_size, index_bits=l.index_bits, exact=bool(l.exact),
                   two_level=bool(not l.exact and l.codebook_size >= TWO_LEVEL_MIN_CODEBOOK), r2=round(l.r2, 6))
              for l in report.layers]
    row = dict(model=name, K=k, edges=n, codebooks=groups,
               index_bits=max(g["index_bits"] for g in groups),
               r2=round(sum(g["r2"] * g["edges"] for g in groups) / n, 6), warnings=list(report.warnings))
    started = time.monotonic()
    row["two_level_check"] = [two_level_check(dense, compressed, scope, g["group"], check_sample, seed)
                              for g in groups if g["two_level"]]
    seconds["two_level_check"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    if data is not None:
        xt, yt = data.x_test, data.y_test
        row["accuracy_eager"] = accuracy(compressed, xt, yt)
        row["accuracy_executorch"], parts = pte_accuracy(compressed, xt, yt)
    else:
        parts = lutham_part_bytes(to_executorch_bytes(compressed, example, delegate=True))
        row["output_error"] = round(relative_output_error(dense, compressed, example), 6)
    seconds["lower_and_evaluate"] = round(time.monotonic() - started, 2)
    row["payload_bytes"], row["codebook_bytes"] = int(parts["payload_bytes"]), int(parts["codebook_bytes"])
    row["bits_per_edge"] = round(8 * row["payload_bytes"] / n, 4)
    row["bits_per_edge_with_codebook"] = round(8 * (row["payload_bytes"] + row["codebook_bytes"]) / n, 4)
    row["seconds"] = seconds
    return row


def load_model(name: str, args, data_cache: dict):
    """(dense model in eval mode, example input, data or None, info)."""
    if name == "heads":
        from lutham.model.multihead import ModelConfig, build_model

        widths = [int(w) for w in args.widths.split(",")] if args.widths else None
        cfg = ModelConfig(backbone="none", heads=args.heads, widths=widths, seed=args.seed, batch=args.example_batch)
        cfg.validate()
        model = build_model(cfg).eval()
        return model, cfg.example_input(), None, dict(heads=args.heads, widths=cfg.head_widths(), seed=args.seed)
    if name in FMNIST:
        from lutham.evaluation.data import load_data
        from lutham.evaluation.methods import accuracy
        from lutham.evaluation.train import train

        if "data" not in data_cache:
            data_cache["data"] = load_data("fashion-mnist")
        data = data_cache["data"]
        model, info = train(name, data, seed=args.seed,
                            progress=lambda s, f: say(f"{s} {f:.0%}") if round(f * 100) % 10 == 0 else None)
        info = {k: v for k, v in info.items() if k in ("kind", "epochs", "seed")}
        info["dense_accuracy_eager"] = accuracy(model, data.x_test, data.y_test)
        return model, data.x_test[:1].contiguous(), data, info
    raise ValueError(f"unknown model '{name}' (heads, pure_kan or vision_kan)")


def _pct(a) -> str:
    return "-" if a is None else f"{100 * a:.2f}%"


def markdown(result: dict) -> str:
    lines = []
    for name, m in result["models"].items():
        info = m["info"]
        head = f"**{name}** ({m['rows'][0]['edges']:,} edges" if m["rows"] else f"**{name}** (no rows"
        if "dense_accuracy_eager" in info:
            head += f"; dense accuracy {_pct(info['dense_accuracy_eager'])} eager"
        lines += [head + ")", "",
                  "| K | K used per codebook | index bits | bits/edge (payload) | bits/edge (+ codebook) | R^2 per codebook | R^2 (edge-weighted) "
                  "| two-level vs exact R^2 (sample) | accuracy eager | accuracy ExecuTorch | output error | compress s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in m["rows"]:
            r2s = ", ".join(f"{g['r2']:.4f}" for g in r["codebooks"])
            used = ", ".join(f"{g['K']:,}" + (" (exact)" if g["exact"] else " (2-level)" if g["two_level"] else "") for g in r["codebooks"])
            check = "; ".join(f"{c['r2_two_level']:.4f} vs {c['r2_exact']:.4f}" for c in r["two_level_check"]) or "-"
            lines.append(f"| {r['K']:,} | {used} | {r['index_bits']} | {r['bits_per_edge']:.2f} | {r['bits_per_edge_with_codebook']:.2f} "
                         f"| {r2s} | {r['r2']:.4f} | {check} "
                         f"| {_pct(r.get('accuracy_eager'))} | {_pct(r.get('accuracy_executorch'))} "
                         f"| {r['output_error'] if 'output_error' in r else '-'} | {r['seconds']['compress']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="pure_kan,vision_kan,heads")
    ap.add_argument("--ks", default=DEFAULT_KS, help="codebook sizes, comma-separated")
    ap.add_argument("--heads-ks", default=None, help="codebook sizes for the heads model (default --ks)")
    ap.add_argument("--heads", type=int, default=50)
    ap.add_argument("--widths", default=None, help="heads model widths, input first (default 2048,512,25)")
    ap.add_argument("--example-batch", type=int, default=16, help="seeded inputs for the heads model's output error")
    ap.add_argument("--check-sample", type=int, default=50_000, help="edges assigned exactly where the codebook is two-level")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="k_sweep.json")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--add", action="store_true",
                    help="keep the rows already in --out (same seed), replacing those of the same model and K")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's pytree notices, one per lowering
    import faiss  # noqa: F401  (imported here, not inside the first row's compress time)
    ks = [int(k) for k in args.ks.split(",")]
    heads_ks = [int(k) for k in args.heads_ks.split(",")] if args.heads_ks else ks
    result = dict(seed=args.seed, models={})
    if args.add and Path(args.out).is_file():
        result = json.loads(Path(args.out).read_text())
        if result.get("seed") != args.seed:
            raise SystemExit(f"k_sweep: {args.out} holds seed {result.get('seed')}, not {args.seed}")
    data_cache: dict = {}

    def write() -> None:
        write_atomic(args.out, (json.dumps(result, indent=2) + "\n").encode())
        if args.markdown:
            write_atomic(args.markdown, markdown(result).encode())

    for name in args.models.split(","):
        started = time.monotonic()
        dense, example, data, info = load_model(name, args, data_cache)
        say(f"{name}: loaded in {time.monotonic() - started:.1f} s")
        runs = heads_ks if name == "heads" else ks
        kept = [r for r in result["models"].get(name, {}).get("rows", []) if r["K"] not in runs]
        if kept and result["models"][name]["info"] != info:
            raise SystemExit(f"k_sweep: {args.out}'s {name} is another model ({result['models'][name]['info']})")
        entry = result["models"][name] = dict(info=info, rows=kept)
        for k in runs:
            say(f"{name}: K = {k} ...")
            row = sweep_row(name, dense, k, args.seed, example, data, args.check_sample)
            entry["rows"].append(row)
            entry["rows"].sort(key=lambda r: r["K"])  # any run order (--ks), rows by K
            say(f"{name}: K = {k}: " + json.dumps({key: row[key] for key in ("index_bits", "bits_per_edge", "r2", "seconds")}))
            write()
        del dense
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
