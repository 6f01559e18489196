"""Entry points the TypeScript CLI calls through the bridge (and tests call directly).

Everything crossing the bridge is plain JSON-able data; large data moves as file paths.

Each entry point's module is imported on first use: the exporter pulls in ExecuTorch's
compiler (~3 s of imports), which `lutham run`, `eval` and `report` never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for readers and type checkers (and the layer contract)
    from .bench.compare import run_bench
    from .evaluation import evaluate, report_data
    from .exporter.pipeline import export, export_model
    from .run.runtime import run_file

_HOMES = {
    "run_bench": ".bench.compare",
    "evaluate": ".evaluation",
    "report_data": ".evaluation",
    "export": ".exporter.pipeline",
    "export_model": ".exporter.pipeline",
    "run_file": ".run.runtime",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __package__), name)
    globals()[name] = value
    return value
