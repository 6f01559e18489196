"""Entry points the TypeScript CLI calls through the bridge (and tests call directly).

Everything crossing the bridge is plain JSON-able data; large data moves as file paths.
"""

from __future__ import annotations

from .bench.compare import run_bench
from .evaluation import evaluate, report_data
from .exporter.pipeline import export, export_model
from .run.runtime import run_file

__all__ = ["evaluate", "export", "export_model", "report_data", "run_bench", "run_file"]
