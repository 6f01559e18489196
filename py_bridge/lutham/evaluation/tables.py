"""The evaluation tables (what `lutham eval` prints and `lutham report` draws).

For each model (the pure KAN, the Vision KAN, or the user's --checkpoint):
- table1: Dense, SHARe-KAN fp32, SHARe-KAN int (default bits) at the default K: test accuracy
  +- standard error, KAN-layer bytes and ratio. The compressed rows run lutham.pte through
  ExecuTorch with the C++ LuthamBackend when it is built ('engine': 'executorch'), else eager.
- saturation: R^2 of the coefficients and accuracy vs K (the paper's Figure 3).
- pruning: accuracy vs magnitude pruning of whole edges, no fine-tune, next to the best
  SHARe-KAN measured at no more bytes (the paper's Figure 1, the "pruning cliff").
- baselines: plain k-means of the raw coefficients at the same bytes as SHARe-KAN (and at each
  K of the sweep), optionally with a codebook fine-tune, and uniform low-bit quantization.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from ..compress import CompressionConfig, compress_model
from . import methods as M
from .data import load_data
from .train import label, load_checkpoint, train

Progress = Callable[[str, float], None]

SATURATION_KS = [16, 64, 256, 1024, 4096, 16384, 65536]
SPARSITIES = [0.0, 0.1, 0.3, 0.5, 0.7]
UNIFORM_BITS = [2, 3, 4, 8]
MODELS = ["pure_kan", "vision_kan"]
TARGET_POINTS = 0.5
TARGET_RATIO = 12.0


def _row(method: str, acc: float, n: int, nbytes: int, dense: int, engine: str = "eager", **extra) -> dict:
    return dict(method=method, accuracy=acc, se=M.standard_error(acc, n), bytes=int(nbytes),
                bytes_per_edge=None, ratio=dense / nbytes if nbytes else None, engine=engine, **extra)


def _compress(model, cfg: CompressionConfig):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clamping is reported through K_layers
        return compress_model(model, cfg)


class _Stages:
    """Maps (model i of n, stage j of m) to one overall fraction for the progress callback."""

    def __init__(self, progress: Progress | None, models: int):
        self.progress, self.models, self.model = progress, models, 0
        self.done = 0.0

    def __call__(self, label: str, fraction: float) -> None:
        if self.progress:
            self.progress(label, min(1.0, (self.model + fraction) / self.models))


def evaluate_model(model, kind: str, data, opts: dict, say: Callable[[str, float], None]) -> dict:
    seed = int(opts.get("seed", 0))
    k_default = int(opts.get("codebook_size") or CompressionConfig.codebook_size)
    bits = {b: int(opts[b]) for b in ("gain_bits", "bias_bits", "base_bits") if opts.get(b) is not None}
    int_cfg = lambda k: CompressionConfig(codebook_size=k, seed=seed, **bits)  # noqa: E731
    base_bits = int_cfg(k_default).base_bits
    x, y, n = data.x_test, data.y_test, len(data.x_test)
    dense_b = M.dense_bytes(model)
    n_edges = M.edges(model)
    layer_edges = [m.out_features * m.in_features for _, m in M.kan_layers(model)]
    engine_problem = None if opts.get("engine", "auto") != "eager" else "eager requested (--engine eager)"
    if engine_problem is None:
        engine_problem = M.executorch_available()
    use_pte = engine_problem is None
    finetune = bool(opts.get("finetune_codebook"))
    calib = data.calibration(seed=seed) if finetune else None
    out: dict = dict(kind=kind, label=label(kind, model), edges=n_edges, layer_edges=layer_edges,
                     dense_bytes=dense_b, engine="executorch" if use_pte else "eager",
                     engine_note=None if use_pte else f"ExecuTorch not used: {engine_problem}")
    per_edge = lambda b: b / n_edges  # noqa: E731

    # ---- Table 1
    say("dense accuracy", 0.02)
    try:
        dense_acc = M.accuracy(model, x, y)
    except RuntimeError as e:  # a --checkpoint that does not fit the --data
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"the model does not accept the data's inputs (shape {list(x.shape[1:])}, {data.classes} classes): {first}") from None
    if len(x) and int(y.max()) >= model(x[:1]).shape[-1]:
        raise ValueError(f"the data has {data.classes} classes but the model only {model(x[:1]).shape[-1]} outputs")
    t1 = [_row("Dense", dense_acc, n, dense_b, dense_b, "eager")]
    compressed = {}
    for i, (name, cfg) in enumerate([("SHARe-KAN fp32", CompressionConfig.fp32(codebook_size=k_default, seed=seed)),
                                     ("SHARe-KAN int", int_cfg(k_default))]):
        say(f"compress {name}", 0.05 + 0.05 * i)
        c, rep = _compress(model, cfg)
        compressed[name] = c
        eager = M.accuracy(c, x, y)
        nbytes = M.shared_bytes(c)
        extra = dict(eager_accuracy=eager, K=k_default, K_layers=[l.codebook_size for l in rep.layers],
                     r2_layers=[l.r2 for l in rep.layers],
                     bits=dict(index=[l.index_bits for l in rep.layers], gain=cfg.gain_bits, bias=cfg.bias_bits,
                               base=cfg.base_bits, codebook=cfg.codebook_bits))
        acc, engine = eager, "eager"
        if use_pte:
            say(f"{name}: lutham.pte through ExecuTorch", 0.06 + 0.05 * i)
            acc, parts = M.pte_accuracy(c, x, y)
            engine = "executorch"
            extra["pte"] = parts
            nbytes = parts["kan_bytes"]  # what the .pte actually stores for the KAN layers
        extra["analytic_bytes"] = M.shared_bytes(c)
        t1.append(_row(name, acc, n, nbytes, dense_b, engine, **extra))
    if opts.get("int8_compute"):  # the same SHARe-KAN int model in LuthamBackend's int8 compute mode
        import copy

        from ..compress.int8 import set_compute

        say("SHARe-KAN int, int8 compute", 0.15)
        c = copy.deepcopy(compressed["SHARe-KAN int"])
        set_compute(c, "int8")
        eager = M.accuracy(c, x, y)  # the eager op computes the runtime's bits (compress/int8.py)
        base_row = t1[2]
        extra = dict(eager_accuracy=eager, K=k_default, K_layers=base_row["K_layers"], r2_layers=base_row["r2_layers"],
                     bits=base_row["bits"], compute="int8", analytic_bytes=base_row["analytic_bytes"])
        acc, engine, nbytes = eager, "eager", base_row["analytic_bytes"]
        if use_pte:
            say("SHARe-KAN int, int8 compute: lutham.pte through ExecuTorch", 0.16)
            acc, parts = M.pte_accuracy(c, x, y)
            engine, nbytes = "executorch", parts["kan_bytes"]
            extra["pte"] = parts
        t1.append(_row("SHARe-KAN int, int8 compute", acc, n, nbytes, dense_b, engine, **extra))
    for r in t1:
        r["bytes_per_edge"] = per_edge(r["bytes"])
    out["table1"] = t1
    int_row = t1[2]

    # ---- VQ saturation
    sat = []
    max_edges = max(layer_edges)
    ks = sorted({min(int(k), max_edges) for k in opts.get("ks") or SATURATION_KS})
    for i, k in enumerate(ks):
        say(f"saturation K={k}", 0.15 + 0.3 * i / len(ks))
        c, rep = _compress(model, int_cfg(k))
        nb = M.shared_bytes(c)
        acc = M.accuracy(c, x, y)
        big = max(range(len(rep.layers)), key=lambda j: rep.layers[j].edges)
        sat.append(dict(K=k, K_layers=[l.codebook_size for l in rep.layers], r2=rep.layers[big].r2,
                        r2_layers=[l.r2 for l in rep.layers], exact_layers=[l.exact for l in rep.layers],
                        accuracy=acc, se=M.standard_error(acc, n), bytes=nb, bytes_per_edge=per_edge(nb),
                        ratio=dense_b / nb, engine="eager"))
    out["saturation"] = sat
    out["saturation_r2_layer"] = max(range(len(layer_edges)), key=lambda j: layer_edges[j])

    # ---- baselines at equal bytes
    say("baselines", 0.45)
    base = []
    budget = int_row["analytic_bytes"]
    k_eq = M.codebook_size_for_budget(model, budget)
    plain_ks = sorted({k_eq, *ks})
    plain_models = {}
    for i, k in enumerate(plain_ks):
        say(f"plain k-means K={k}", 0.45 + 0.2 * i / len(plain_ks))
        pm, nb = M.plain_kmeans(model, k, seed, base_bits=base_bits)
        if k == k_eq:
            plain_models[k] = pm
        acc = M.accuracy(pm, x, y)
        base.append(dict(method="plain k-means", setting=f"K={k}", K=k, equal_bytes=k == k_eq, accuracy=acc,
                         se=M.standard_error(acc, n), bytes=nb, bytes_per_edge=per_edge(nb), ratio=dense_b / nb,
                         engine="eager"))
    for bits_ in opts.get("uniform_bits") or UNIFORM_BITS:
        say(f"uniform {bits_}-bit", 0.66)
        um, nb = M.uniform_quantization(model, int(bits_), base_bits=base_bits)
        acc = M.accuracy(um, x, y)
        base.append(dict(method="uniform quantization", setting=f"{bits_}-bit coefficients", bits=int(bits_),
                         accuracy=acc, se=M.standard_error(acc, n), bytes=nb, bytes_per_edge=per_edge(nb),
                         ratio=dense_b / nb, engine="eager"))
    if finetune:
        say("codebook fine-tune: plain k-means", 0.7)
        ft = M.finetune_codebooks(plain_models[k_eq], *calib, seed=seed)
        acc = M.accuracy(ft, x, y)
        nb = M.plain_kmeans_bytes(model, k_eq, base_bits=base_bits)
        base.append(dict(method="plain k-means + codebook fine-tune", setting=f"K={k_eq}", K=k_eq, equal_bytes=True,
                         accuracy=acc, se=M.standard_error(acc, n), bytes=nb, bytes_per_edge=per_edge(nb),
                         ratio=dense_b / nb, engine="eager"))
        say("codebook fine-tune: SHARe-KAN", 0.75)
        ft = M.finetune_codebooks(compressed["SHARe-KAN int"], *calib, seed=seed)
        acc, engine, nb = M.accuracy(ft, x, y), "eager", M.shared_bytes(ft)
        row = dict(method="SHARe-KAN int + codebook fine-tune", setting=f"K={k_default}", K=k_default,
                   eager_accuracy=acc)
        if use_pte:
            say("SHARe-KAN + fine-tune: lutham.pte through ExecuTorch", 0.77)
            acc, parts = M.pte_accuracy(ft, x, y)
            engine, nb = "executorch", parts["kan_bytes"]
        base.append(dict(**row, accuracy=acc, se=M.standard_error(acc, n), bytes=nb, bytes_per_edge=per_edge(nb),
                         ratio=dense_b / nb, engine=engine))
    out["baselines"] = base
    out["equal_bytes"] = dict(budget_bytes=budget, plain_kmeans_K=k_eq,
                              calibration_images=len(calib[0]) if calib else 0)

    # ---- pruning cliff
    prune = []
    sk_points = [dict(label=f"SHARe-KAN int K={r['K']}", accuracy=r["accuracy"], bytes=r["bytes"]) for r in sat]
    sk_points.append(dict(label=f"SHARe-KAN int K={k_default}", accuracy=int_row["accuracy"], bytes=int_row["bytes"]))
    sk_points.append(dict(label=f"SHARe-KAN fp32 K={k_default}", accuracy=t1[1]["accuracy"], bytes=t1[1]["bytes"]))
    for i, s in enumerate(opts.get("sparsities") or SPARSITIES):
        say(f"pruning {round(s * 100)}%", 0.8 + 0.2 * i / len(SPARSITIES))
        pm, nb = M.magnitude_prune(model, float(s))
        acc = M.accuracy(pm, x, y)
        fits = [p for p in sk_points if p["bytes"] <= nb]
        best = max(fits, key=lambda p: p["accuracy"]) if fits else None
        prune.append(dict(sparsity=float(s), accuracy=acc, se=M.standard_error(acc, n), bytes=nb,
                          bytes_per_edge=per_edge(nb), ratio=dense_b / nb, engine="eager",
                          sharekan=None if best is None else {**best, "se": M.standard_error(best["accuracy"], n),
                                                              "ratio": dense_b / best["bytes"]}))
    out["pruning"] = prune
    say("done", 1.0)
    return out


def _target(models: list[dict]) -> dict:
    pure = next((m for m in models if m["kind"] == "pure_kan"), None) or (models[0] if models else None)
    if pure is None:
        return {}
    dense, sk = pure["table1"][0], pure["table1"][2]
    drop = (dense["accuracy"] - sk["accuracy"]) * 100
    met = drop <= TARGET_POINTS and sk["ratio"] >= TARGET_RATIO
    return dict(model=pure["kind"], dense=dense["accuracy"], sharekan_int=sk["accuracy"], drop_points=drop,
                ratio=sk["ratio"], engine=sk["engine"], max_drop_points=TARGET_POINTS, min_ratio=TARGET_RATIO, met=met,
                text=(f"{'MET' if met else 'NOT MET'}: SHARe-KAN int loses {drop:.2f} points against Dense "
                      f"({sk['accuracy'] * 100:.2f}% vs {dense['accuracy'] * 100:.2f}%, {sk['engine']}) at "
                      f"{sk['ratio']:.1f}x KAN-layer storage; target: within {TARGET_POINTS} points at >= {TARGET_RATIO:.0f}x"))


def _chance_warning(result: dict, data) -> list[str]:
    """A Dense accuracy near chance (below twice chance, or a quarter of the way from chance to
    100% with few classes) almost always means the inputs are not in the range the model expects."""
    acc, chance = result["table1"][0]["accuracy"], 1.0 / data.classes
    if data.classes < 2 or acc >= min(2 * chance, chance + (1 - chance) / 4):
        return []
    hint = "--data is fed as given" if data.pixels not in ("-1,1", "0,1") else f"8-bit pixels were mapped to --pixels {data.pixels}"
    return [f"Dense {acc * 100:.1f}% on {data.classes} classes: check the input scaling ({result['label']}; {hint})"]


def evaluate(opts: dict, progress: Progress | None = None) -> dict:
    """opts: dataset, data, checkpoint, subset, epochs, seed, models (list), codebook_size,
    gain_bits/bias_bits/base_bits, finetune_codebook, int8_compute (a Table 1 row of SHARe-KAN int in
    the int8 compute mode), engine ('auto'|'eager'), ks, sparsities,
    uniform_bits, threads, out (optional path for the JSON). Returns the results dict."""
    started = time.time()
    threads = int(opts.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    seed = int(opts.get("seed", 0))
    if opts.get("codebook_size") is not None and not 1 <= int(opts["codebook_size"]) <= 65536:
        raise ValueError(f"--codebook-size must be 1..65536, got {opts['codebook_size']}")
    data = load_data(opts.get("dataset") or "fashion-mnist", opts.get("data"), opts.get("subset"), seed,
                     pixels=opts.get("pixels"))
    if opts.get("checkpoint"):
        model, kind = load_checkpoint(opts["checkpoint"], data, opts.get("weights"), bool(opts.get("trust_pickle", False)))
        jobs = [(kind, lambda model=model: (model, dict(kind=kind, checkpoint=opts["checkpoint"], cached=True)))]
    else:
        kinds = opts.get("models") or MODELS
        bad = [k for k in kinds if k not in MODELS]
        if bad:
            raise ValueError(f"unknown model(s) {bad} (choose from {', '.join(MODELS)})")
        epochs = opts.get("epochs")
        jobs = [(k, lambda k=k: train(k, data, None if epochs is None else int(epochs), seed, progress=lambda s, f: stages(s, 0.3 * f)))
                for k in kinds]
    stages = _Stages(progress, len(jobs))
    results = []
    for i, (kind, get) in enumerate(jobs):
        stages.model = i
        stages(f"{kind}: model", 0.0)
        model, info = get()
        say = lambda s, f, kind=kind: stages(f"{kind}: {s}", 0.3 + 0.7 * f)  # noqa: E731
        r = evaluate_model(model, kind, data, opts, say)
        r["training"] = info
        results.append(r)
    cfg = CompressionConfig()
    out = dict(
        lutham_eval=1,
        dataset=data.describe(),
        settings=dict(codebook_size=int(opts.get("codebook_size") or cfg.codebook_size),
                      gain_bits=int(opts.get("gain_bits") or cfg.gain_bits), bias_bits=int(opts.get("bias_bits") or cfg.bias_bits),
                      base_bits=int(opts.get("base_bits") or cfg.base_bits), codebook_bits=cfg.codebook_bits,
                      seed=seed, subset=opts.get("subset"), finetune_codebook=bool(opts.get("finetune_codebook")),
                      int8_compute=bool(opts.get("int8_compute")),
                      threads=torch.get_num_threads()),
        models=results,
        target=_target(results),
        warnings=[w for r in results for w in _chance_warning(r, data)]
        + list(dict.fromkeys(r["training"]["cache_note"] for r in results if r["training"].get("cache_note"))),
        seconds=round(time.time() - started, 1),
    )
    if opts.get("out"):
        from ..files import write_atomic

        write_atomic(opts["out"], (json.dumps(out, indent=2) + "\n").encode())
    return out


def report_data(opts: dict, progress: Progress | None = None) -> dict:
    """The results a report is drawn from: read from opts['results'] (a JSON written by
    `lutham eval --json`) or computed by evaluate(opts)."""
    path = opts.get("results")
    if path:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"--results: no such file {path}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"--results {path} is not JSON: {e}") from None
        if not isinstance(data, dict) or data.get("lutham_eval") != 1 or "models" not in data:
            raise ValueError(f"--results {path} is not the output of 'lutham eval --json'")
        if progress:
            progress("read results", 1.0)
        return data
    return evaluate(opts, progress)
