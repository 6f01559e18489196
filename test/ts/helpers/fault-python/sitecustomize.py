"""Fault injection for the bridge start-up tests (test/ts/hardening.test.ts).

Loaded through PYTHONPATH by the wrapper interpreter the tests make; when the CLI's Python child
starts importing `lutham.bridge.entry`, does what LUTHAM_TEST_FAULT says: raise, exit, kill
or stop itself, or hang.
"""
import importlib.abc
import os
import signal
import sys
import time

FAULT = os.environ.get("LUTHAM_TEST_FAULT", "")


class _Fault(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "lutham.bridge.entry":
            return None
        if FAULT == "raise":
            raise RuntimeError("injected start-up failure")
        if FAULT == "exit":
            os._exit(3)
        if FAULT == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if FAULT == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        if FAULT == "hang":
            while True:
                time.sleep(1)
        return None


if FAULT:
    sys.meta_path.insert(0, _Fault())
