"""bridge/lifeline.py: the CLI's Python child dies with the CLI, quietly, and only then."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


# The CLI's Python child, launched by a stand-in parent. The child installs the lifeline, tells
# the parent it is ready and then raises `error` in a __del__ (pythonia's Proxy.__del__ raises
# SystemExit when its write to a dead CLI fails). The parent exits `parent_delay` seconds after
# "ready" (or never, when None). Without the brief wait in the hooks, the kernel's order (the
# parent's socket closes before the child is reparented) made the SIGKILL test print a traceback.
_LIFELINE_PARENT = r"""
import os, subprocess, sys, time
child_src, stderr_path, pid_path, delay = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
env = dict(os.environ, LUTHAM_PARENT_PID=str(os.getpid()))
with open(stderr_path, "w") as err:
    child = subprocess.Popen([sys.executable, "-c", child_src], env=env, stdout=subprocess.PIPE, stderr=err)
open(pid_path, "w").write(str(child.pid))
assert child.stdout.readline() == b"ready\n"
if delay == "None":
    sys.exit(child.wait())
time.sleep(float(delay))
os._exit(0)
"""

_LIFELINE_CHILD = r"""
import sys, time
from lutham.bridge import lifeline
lifeline.install()
class Proxy:
    def __del__(self):
        raise {error}("the bridge to the CLI is gone")
p = Proxy()
print("ready", flush=True)
del p
time.sleep(0.2)
print("still running", file=sys.stderr, flush=True)
"""


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("error,parent_delay,expect", [
    # The parent dies 0.3 s after the failed write: quiet exit, no traceback, no further work.
    ("SystemExit", 0.3, None),
    ("BrokenPipeError", 0.3, None),
    # A parent that stays: the error is real and is reported after the wait, the child runs on.
    ("SystemExit", None, "Exception ignored"),
    # An unrelated error is reported at once even if the parent dies soon after.
    ("ValueError", 0.3, "ValueError: the bridge to the CLI is gone"),
])
def test_lifeline_hides_errors_from_a_dying_parents_bridge_only(tmp_path, error, parent_delay, expect):
    stderr_path, pid_path = tmp_path / "child.err", tmp_path / "child.pid"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", _LIFELINE_PARENT, _LIFELINE_CHILD.format(error=error),
                    str(stderr_path), str(pid_path), str(parent_delay)], env=env, timeout=60, check=True)
    child = int(pid_path.read_text())
    for _ in range(100):
        if _pid_gone(child):
            break
        subprocess.run(["sleep", "0.1"])
    assert _pid_gone(child), "the child outlived its parent"
    stderr = stderr_path.read_text()
    if expect is None:
        assert stderr == ""
    else:
        assert expect in stderr
        if parent_delay is None:
            assert "still running" in stderr
