"""Issue 15.8: `lutham bench` removes its temp folder ($TMPDIR/lutham-bench-*) when SIGTERM or
SIGINT (the CLI forwards both as SIGTERM) ends the Python child through the lifeline. On main the
folder, with model.pt, was left every time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from lutham.bridge import lifeline
    from lutham.bench.compare import run_bench
    lifeline.install()
    def progress(stage, fraction):
        if os.listdir(os.environ["TMPDIR"]) and any(n.startswith("lutham-bench-") for n in os.listdir(os.environ["TMPDIR"])):
            os.kill(os.getpid(), signal.SIGTERM)  # what the CLI sends on Ctrl-C or kill
            time.sleep(30)
    run_bench({"heads": 1, "widths": [8, 4], "grid": 4, "codebook_size": 8, "batches": [1], "variants": ["dense"]}, progress)
""")


def test_bench_temp_folder_is_removed_on_sigterm(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path), LUTHAM_PARENT_PID=str(os.getpid()))
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, timeout=300, capture_output=True, text=True)
    assert child.returncode == 128 + 15, child.stderr[-2000:]
    assert [n for n in os.listdir(tmp_path) if n.startswith("lutham-bench-")] == []
