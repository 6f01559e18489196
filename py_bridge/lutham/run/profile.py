"""`lutham run --profile`: ExecuTorch's own profiler over a run, read with its Inspector.

The program runs with an ETDump attached (executorch.runtime's enable_etdump): every operator,
delegate call and the events LuthamBackend logs itself (per layer, and its two phases: see
DELEGATE_EVENTS in lower/preprocess.py). `executorch.devtools.Inspector` reads the ETDump with
the ETRecord that `lutham export --etrecord` wrote, which ties each LuthamBackend event to its
graph node, so a row is named by the layer's module path (heads.7.layers.1). Without an
ETRecord the Inspector knows neither names nor backends: delegate events with LuthamBackend's
ids are taken as its layers, named by delegate index.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..lower.preprocess import DELEGATE_EVENTS

BACKEND_NAME = "LuthamBackend"
_LAYER, _BASIS, _TABLES = (str(i) for i in DELEGATE_EVENTS)  # the Inspector names delegate events by id
# ExecuTorch's framework events: the wrappers around what the rows measure, and the run itself.
_RUN_EVENT = "Method::execute"
_WRAPPERS = {"OPERATOR_CALL", "DELEGATE_CALL"}


def default_etrecord(model: str | os.PathLike) -> Path | None:
    """lutham.etrecord beside the .pte (export --etrecord writes it there), if it exists."""
    path = Path(model).with_name("lutham.etrecord")
    return path if path.is_file() else None


def _module_path(event) -> str | None:
    """The innermost module of the event's graph node (the Inspector's module hierarchy)."""
    for stack in event.module_hierarchy.values():
        if stack:
            return list(stack.values())[-1][0] or None
    return None


def _ms(values) -> list[float]:
    return [float(v) for v in values]


def _method_etrecord(etrecord: str | os.PathLike, method: str):
    """The ETRecord as the Inspector can read it for `method`.

    ExecuTorch 1.5.1's ETRecord saves every method of a multi-method program (export --methods
    per-head), but its Inspector reads one: `_consume_etrecord` looks up the maps under "forward"
    and `gen_graphs_from_etrecord` takes edge_dialect_program as one program
    (devtools/inspector/_inspector.py, _inspector_utils.py). So the run method's graph and maps
    are put where it looks; a single-method ETRecord is given as it is (its path)."""
    from executorch.devtools.etrecord import parse_etrecord

    record = parse_etrecord(str(etrecord))
    programs = record.edge_dialect_program
    if not isinstance(programs, dict):
        return str(etrecord)
    if method not in programs:
        raise ValueError(f"{etrecord} has no method '{method}' (it is the ETRecord of another program)")
    record.edge_dialect_program = programs[method]
    for field in ("_debug_handle_map", "_delegate_map", "_instruction_id_to_num_outs_map"):
        maps = getattr(record, field, None)
        if isinstance(maps, dict) and method in maps:
            maps["forward"] = maps[method]
    return record


def profile_table(etdump: str | os.PathLike, etrecord: str | os.PathLike | None, method: str = "forward") -> dict:
    """Rows of the ETDump's Execute block: one per LuthamBackend layer (with its phases), one per
    other delegate call and one per portable operator; times in ms, shares of the run's median.
    `method`: the method the ETDump ran (its graph in a multi-method ETRecord names the rows)."""
    import warnings

    import numpy as np

    from ..compress import layer as _registers_kan_linear  # the ETRecord's graph holds lutham::kan_linear  # noqa: F401
    from executorch.devtools import Inspector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Output Buffer not found": no debug buffer is asked for
        try:
            record = None if etrecord is None else _method_etrecord(etrecord, method)
            inspector = Inspector(etdump_path=str(etdump), etrecord=record, enable_module_hierarchy=etrecord is not None)
        except Exception as e:  # a truncated or foreign file: flatc or the ETRecord's unzip says why
            raise ValueError(f"ExecuTorch's Inspector cannot read {etdump}" + (f" with {etrecord}" if etrecord else "")
                             + f": {type(e).__name__}") from None
    blocks = [b for b in inspector.event_blocks if any(e.name == _RUN_EVENT for e in b.events)]
    if not blocks:
        raise ValueError(f"{etdump} holds no {_RUN_EVENT} event (no run was recorded)")
    events = blocks[-1].events
    run = next(e for e in events if e.name == _RUN_EVENT)
    run_ms = _ms(run.perf_data.raw)
    run_median = float(np.median(run_ms))
    rows, phases, lutham_runs = [], {}, np.zeros(len(run_ms))
    delegate_index = 0
    for e in events:
        if e.perf_data is None or e.name == _RUN_EVENT:
            continue
        raw = _ms(e.perf_data.raw)
        # Without an ETRecord the Inspector knows no backend names: the events with our ids are taken as ours.
        if e.is_delegated_op and e.delegate_backend_name in (BACKEND_NAME, None):
            handles = tuple(e.debug_handles) if isinstance(e.debug_handles, (list, tuple)) else (e.debug_handles,)
            # The phases come before their layer's event (they end first): keep them for it.
            if e.name in (_BASIS, _TABLES):
                phases.setdefault(handles, {})[DELEGATE_EVENTS[int(e.name)]] = float(np.median(raw))
                continue
            if e.name != _LAYER:
                continue
            layer_phases = phases.pop(handles, {})
            name = _module_path(e) or f"{BACKEND_NAME} delegate {delegate_index}"
            delegate_index += 1
            if len(raw) == len(run_ms):
                lutham_runs += np.asarray(raw)
            rows.append(dict(layer=name, backend=BACKEND_NAME, calls=len(raw), median_ms=float(np.median(raw)),
                             share=float(np.median(raw)) / run_median,
                             basis_ms=layer_phases.get("basis"), tables_edges_ms=layer_phases.get("tables+edges")))
        elif e.name == "DELEGATE_CALL" and e.delegate_backend_name not in (None, BACKEND_NAME):
            rows.append(dict(layer=_module_path(e) or "(delegate)", backend=e.delegate_backend_name, calls=len(raw),
                             median_ms=float(np.median(raw)), share=float(np.median(raw)) / run_median,
                             basis_ms=None, tables_edges_ms=None))
        elif e.name not in _WRAPPERS and not e.is_delegated_op and e.name.startswith("native_call_"):
            rows.append(dict(layer=_module_path(e) or "", backend=f"portable {e.name[len('native_call_'):]}",
                             calls=len(raw), median_ms=float(np.median(raw)), share=float(np.median(raw)) / run_median,
                             basis_ms=None, tables_edges_ms=None))
    lutham_rows = [r for r in rows if r["backend"] == BACKEND_NAME]
    return dict(etdump=str(etdump), etrecord=None if etrecord is None else str(etrecord), runs=len(run_ms),
                run_median_ms=run_median, rows=rows, lutham_layers=len(lutham_rows),
                # per run, the LuthamBackend layers summed; its median and share of the run's
                lutham_median_ms=float(np.median(lutham_runs)) if lutham_rows else None,
                lutham_share=float(np.median(lutham_runs)) / run_median if lutham_rows else None,
                lutham_run_ms=[float(v) for v in lutham_runs] if lutham_rows else [])
