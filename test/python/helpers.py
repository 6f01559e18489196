"""Small models and exports shared by the Python tests (kept tiny so the suite stays fast)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from executorch.exir import to_edge_transform_and_lower
from executorch.exir._serialize._program import deserialize_pte_binary

from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.files import write_atomic
from lutham.lower.partitioner import LuthamPartitioner
from lutham.model.multihead import ModelConfig, build_model


def small_config(heads: int = 3, widths=(32, 8, 4), grid: int = 5, seed: int = 0, backbone: str = "none", batch: int = 1) -> ModelConfig:
    return ModelConfig(backbone=backbone, heads=heads, widths=list(widths), grid=grid, seed=seed, batch=batch)


def small_pair(config: ModelConfig | None = None, compression: CompressionConfig | None = None):
    """(config, dense model, compressed model, report)."""
    config = config or small_config()
    dense = build_model(config)
    compressed, report = compress_model(dense, compression or CompressionConfig(codebook_size=16))
    return config, dense, compressed, report


def export_bytes(model: torch.nn.Module, config: ModelConfig, delegate: bool) -> bytes:
    return to_executorch_bytes(model, config.example_input(), delegate)


# ---------------------------------------------------------------- export options and output sets

NAMES = ("dense.pte", "lutham.pte", "report.json")


def _opts(out, **kw):
    """`lutham export` options of a 2-head 16 -> 4 model: seconds to export."""
    return {"backbone": "none", "heads": 2, "widths": [16, 4], "grid": 4, "codebook_size": 8, "out": str(out)} | kw


# The model of the session's one `lutham export` (conftest.tiny_export): 3 heads 32 -> 8 -> 4.
TINY_EXPORT = {"backbone": "none", "heads": 3, "widths": [32, 8, 4], "grid": 5, "codebook_size": 16}


def _listing(directory):
    """{name: bytes} of every file in the directory."""
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _old_set(directory):
    """A previous output set (placeholder files) to check that a failed export leaves it alone."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in NAMES:
        (directory / n).write_text(f"old {n}")
    return _listing(directory)


# ---------------------------------------------------------------- programs for the runtime tests

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "delegate"
RUNNER = BUILD / "lutham_runner"


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@dataclasses.dataclass
class Built:
    cfg: ModelConfig
    dense: torch.nn.Module
    compressed: torch.nn.Module
    lutham_pte: Path
    dense_pte: Path | None


def build(tmp: Path, name: str, cfg: ModelConfig, comp: CompressionConfig, dense: bool = False, compute: str = "float",
          max_batch: int = 1) -> Built:
    from lutham.compress.int8 import set_compute

    torch.manual_seed(0)
    model = build_model(cfg).eval()
    compressed, _ = compress_model(model, comp)
    compressed.eval()
    set_compute(compressed, compute)
    x = cfg.example_input()
    lp = tmp / f"{name}.lutham.pte"
    write_atomic(lp, to_executorch_bytes(compressed, x, True, max_batch=max_batch))
    dp = None
    if dense:
        dp = tmp / f"{name}.dense.pte"
        write_atomic(dp, to_executorch_bytes(model, x, False))
    return Built(cfg, model, compressed, lp, dp)


def inputs_for(cfg: ModelConfig, seed: int, wide: bool = True) -> torch.Tensor:
    """Inputs of the program's shape, spread past the grid range [-1, 1] so that the
    outside-the-grid (all bases zero) and edge-interval cases are exercised too."""
    gen = torch.Generator().manual_seed(seed)
    x = cfg.example_input()
    return torch.rand(x.shape, generator=gen) * (3.0 if wide else 2.0) - (1.5 if wide else 1.0)


# ---------------------------------------------------------------- lowering and payloads


def _lower(model, config):
    ep = torch.export.export(model, (config.example_input(),), strict=False)
    return to_edge_transform_and_lower(ep, partitioner=[LuthamPartitioner()])


def _delegate_payloads(pte: bytes):
    f = deserialize_pte_binary(pte)
    program = f.program
    out = []
    for d in program.execution_plan[0].delegates:
        assert d.id == "LuthamBackend"
        ref = d.processed
        if int(ref.location) == 0:
            out.append(bytes(program.backend_delegate_data[ref.index].data))
        else:
            seg = program.segments[ref.index]
            out.append(None if seg is None else seg)
    return f, out


def live_codebooks() -> int:
    """Codebooks the backend's process-wide cache holds now (after collecting dropped programs)."""
    import gc

    from lutham.run import runtime

    gc.collect()
    return runtime.codebook_cache_stats()["live"]
