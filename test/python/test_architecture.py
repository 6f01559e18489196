"""The architecture contract: py_bridge/.importlinter's layers, checked by import-linter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PY_BRIDGE = Path(__file__).resolve().parents[2] / "py_bridge"


def test_every_stage_imports_only_the_stages_below_it():
    # import-linter reads the sources (grimp), it does not import them: a second or so.
    r = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
                        ".importlinter", "--no-cache"], cwd=PY_BRIDGE, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout
