"""What the Node side imports through pythonia: JSON in, JSON out, progress via a JS callback.

Importing this module points file descriptor 1 at stderr, so nothing Python or a C library
prints can reach the CLI's stdout (pythonia talks over its own IPC channel, not stdout).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys

os.dup2(2, 1)
sys.stdout = sys.stderr
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

import logging  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")
# torchao (imported by executorch) warns through torch's pytree logger at import time.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

import importlib.util  # noqa: E402

# api imports its stages on first use, so an interpreter without our packages would only fail
# inside the first call: find them now (no import) so the CLI says "did not start" at once.
for _package in ("numpy", "torch", "executorch"):
    if importlib.util.find_spec(_package) is None:
        raise ModuleNotFoundError(f"No module named '{_package}'", name=_package)

from .. import api  # noqa: E402
from . import lifeline  # noqa: E402

lifeline.install()


def _finite(value):
    """NaN/Infinity are not JSON: send them as the strings JavaScript prints for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(value) -> str:
    return json.dumps(_finite(value), allow_nan=False)


def _progress(callback):
    if callback is None:
        return None

    def report(stage: str, fraction: float) -> None:
        callback(stage, float(fraction))

    return report


# pythonia sends only the last line of a traceback: a message with a newline in it (a path the
# user gave) would lose everything before it. The message crosses as one JSON line after this
# mark; the CLI decodes it (ts/bridge/python.ts) and escapes it for the terminal.
ERROR_MARK = "lutham-error:"


class BridgeError(Exception):
    """An exception from an entry point, its message JSON-encoded on one line after ERROR_MARK."""


def _whole_message(fn):
    @functools.wraps(fn)
    def call(args_json: str, callback=None) -> str:
        try:
            return fn(args_json, callback)
        except Exception as e:
            text = str(e) or type(e).__name__
            raise BridgeError(ERROR_MARK + json.dumps({"type": type(e).__name__, "message": text})) from None

    return call


@_whole_message
def export(args_json: str, callback=None) -> str:
    return _dumps(api.export(json.loads(args_json), _progress(callback)))


# RunError subclasses ValueError: the bridge shows its message as a one-line error.


@_whole_message
def ping(args_json: str, callback=None) -> str:
    if callback is not None:
        callback("ping", 1.0)
    return json.dumps({"python": sys.version.split()[0], "pid": os.getpid()})


@_whole_message
def run(args_json: str, callback=None) -> str:
    from ..run import runtime

    a = json.loads(args_json)
    try:
        info = runtime.run_file(a["model"], a.get("inputs") or [], a.get("output"), int(a.get("repeat", 10)), int(a.get("seed", 0)),
                                   a.get("data"), a.get("profile"), a.get("etrecord"), a.get("method") or "forward")
    except runtime.BackendNotBuilt as e:
        raise ValueError(str(e)) from None
    return _dumps(info)  # the CLI renders it (ts/render/run.ts)


@_whole_message
def evaluate(args_json: str, callback=None) -> str:
    """`lutham eval`: train or load the models, compress them, measure the tables (evaluation/)."""
    return _dumps(api.evaluate(json.loads(args_json), _progress(callback)))


@_whole_message
def report(args_json: str, callback=None) -> str:
    """`lutham report`: the eval results to draw (read from args['results'] or computed)."""
    return _dumps(api.report_data(json.loads(args_json), _progress(callback)))


@_whole_message
def bench(args_json: str, callback=None) -> str:
    """`lutham bench`: every variant in its own child process; the CLI renders the results (ts/render/bench.ts)."""
    return _dumps(api.run_bench(json.loads(args_json), _progress(callback)))
