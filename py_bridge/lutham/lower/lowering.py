"""Lowering choices for dense.pte and lutham.pte: which partitioner gets which nodes, and the batch.

- KAN layers: in lutham.pte every lutham::kan_linear goes to LuthamBackend; in dense.pte the
  efficient-kan graph stays on ExecuTorch's portable kernels (the baseline a user gets).
- The backbone (e.g. ResNet-50): XNNPACK fp32, through `BackboneXnnpackPartitioner`, which offers
  XNNPACK only nodes of submodules that are not KAN layers.
- Batch: `max_batch > 1` exports with a dynamic batch dimension bounded by max_batch
  (torch.export Dim), so one program serves every batch from 1 to max_batch; memory is
  planned for the upper bound.
- External data: with `external_data`, LuthamBackend puts every codebook in `lutham.ptd`
  (EXTERNAL_DATA_TAG) instead of the .pte; the .pte names the keys it needs.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
from executorch.exir.passes import MemoryPlanningPass
from torch.export import Dim, ExportedProgram

from . import preprocess as _preprocess  # noqa: F401  (LuthamBackend must be imported to be found by name)
from .partitioner import EXTERNAL_TAG_SPEC, LuthamPartitioner

# The tag (and file stem: lutham.ptd) of LUTHAM's external data.
EXTERNAL_DATA_TAG = "lutham"

# Module classes whose nodes make up a KAN layer: dense (efficient-kan layout) and compressed.
KAN_MODULE_TYPES = ("KANLinear", "SharedKANLinear")


def _module_path_and_type(entry) -> tuple[str, str]:
    path, module_type = entry
    name = module_type if isinstance(module_type, str) else getattr(module_type, "__qualname__", str(module_type))
    return path, name.rsplit(".", 1)[-1]


def in_kan_layer(node: torch.fx.Node) -> bool:
    """True when the node was traced inside a KAN layer (per torch.export's nn_module_stack)."""
    stack = node.meta.get("nn_module_stack") or {}
    return any(_module_path_and_type(e)[1] in KAN_MODULE_TYPES for e in stack.values())


def in_backbone(node: torch.fx.Node) -> bool:
    """True for nodes of a submodule that is not a KAN layer (the backbone); the root
    module's own glue (stacking the heads' outputs) is left to the portable kernels."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [_module_path_and_type(e)[0] for e in stack.values()]
    return any(paths) and not in_kan_layer(node)


class BackboneXnnpackPartitioner(XnnpackPartitioner):
    """XnnpackPartitioner restricted to the backbone's nodes (`in_backbone`).

    A node counts if it belongs to a submodule other than a KAN layer; its partition's extra nodes (weights,
    dq/q pairs) come from the same module. Without the restriction XNNPACK would take the
    dense heads' linear/elementwise ops, and dense.pte would no longer be the efficient-kan
    graph on portable kernels.
    """

    def __init__(self, keep: Callable[[torch.fx.Node], bool] = in_backbone, **kwargs):
        super().__init__(**kwargs)
        self._keep = keep

    def get_matched_nodes_from_configs(self, ep: ExportedProgram):
        configs = self.target_partitioner_configs
        saved = {name: cfg.check_constraints for name, cfg in configs.items()}
        try:
            for name, cfg in configs.items():
                original = saved[name]
                cfg.check_constraints = (lambda node, ep, original=original: self._keep(node) and original(node, ep))
            return super().get_matched_nodes_from_configs(ep)
        finally:
            for name, cfg in configs.items():
                cfg.check_constraints = saved[name]

    def ops_to_not_decompose(self, ep: ExportedProgram):
        ops, filter_fn = super().ops_to_not_decompose(ep)
        if filter_fn is None:
            return ops, None
        # KAN-layer nodes decompose as usual, so dense.pte's heads match the portable baseline.
        return ops, (lambda node: self._keep(node) and filter_fn(node))


def dynamic_batch_shapes(example: torch.Tensor, max_batch: int):
    """torch.export dynamic_shapes for a first (batch) dimension of 1..max_batch; None if static."""
    if max_batch <= 1:
        return None
    return ({0: Dim("batch", min=1, max=max_batch)},)


def trace_example(example: torch.Tensor, max_batch: int) -> torch.Tensor:
    """The input to trace with: `example` itself for a static batch; 2 rows when the batch is
    dynamic (torch.export specialises a dimension of size 1)."""
    if max_batch <= 1:
        return example
    reps = (2 + example.shape[0] - 1) // example.shape[0]
    return example.repeat(reps, *([1] * (example.dim() - 1)))[:2].contiguous()


def partitioners(delegate: bool, backbone_xnnpack: bool, external_data: bool = False) -> list:
    from executorch.exir.backend.compile_spec_schema import CompileSpec

    specs = [CompileSpec(EXTERNAL_TAG_SPEC, EXTERNAL_DATA_TAG.encode())] if external_data else []
    chosen: list = [LuthamPartitioner(specs)] if delegate else []
    if backbone_xnnpack:
        chosen.append(BackboneXnnpackPartitioner())
    return chosen


def export_program(model: torch.nn.Module, example: torch.Tensor, max_batch: int = 1):
    """torch.export of `model`, dynamic in the batch when max_batch > 1."""
    x = trace_example(example, max_batch)
    return torch.export.export(model, (x,), dynamic_shapes=dynamic_batch_shapes(x, max_batch), strict=False)


def lower_program(exported: ExportedProgram, partitioner_list: Iterable, step: Callable[[str], None] | None = None,
                  etrecord: bool = False):
    """The ExecutorchProgramManager, memory-planned; write it with `write_to_file` (no contiguous
    copy of the program: a 3 GB dense.pte is never held as bytes) and `external_data`.
    step(name) hears of each step before it starts (lowering ResNet-50 takes minutes). With
    `etrecord`, the manager also holds the ETRecord (`etrecord_bytes`)."""
    step = step or (lambda name: None)
    step("edge dialect + partitioners")
    edge = to_edge_transform_and_lower(exported, partitioner=list(partitioner_list) or None, generate_etrecord=etrecord)
    step("emit + memory plan")
    return edge.to_executorch(ExecutorchBackendConfig(memory_planning_pass=MemoryPlanningPass(alloc_graph_input=True, alloc_graph_output=True)))


def external_data(program) -> dict[str, bytes]:
    """The program's external data files ({tag: .ptd bytes}; empty unless a partitioner asked)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lutham-ptd-") as d:  # the manager's one public way out for .ptd data
        program.write_tensor_data_to_file(d)
        return {f.stem: f.read_bytes() for f in sorted(Path(d).glob("*.ptd"))}


def etrecord_bytes(program) -> bytes:
    """The ETRecord of a manager lowered with etrecord=True (executorch.devtools): the graphs and
    the delegates' debug-handle maps with which Inspector names the events of an ETDump."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lutham-etrecord-") as d:
        path = Path(d) / "lutham.etrecord"
        program.get_etrecord().save(str(path))
        return _reproducible_etrecord(path.read_bytes())


def lower(exported: ExportedProgram, partitioner_list: Iterable) -> tuple[bytes, dict[str, bytes]]:
    """The .pte bytes and the external data files ({tag: .ptd bytes}; empty unless a partitioner asks)."""
    program = lower_program(exported, partitioner_list)
    return program.buffer, external_data(program)


def lower_with_etrecord(exported: ExportedProgram, partitioner_list: Iterable) -> tuple[bytes, dict[str, bytes], bytes]:
    """lower(), plus the ETRecord bytes."""
    program = lower_program(exported, partitioner_list, etrecord=True)
    return program.buffer, external_data(program), etrecord_bytes(program)


def lower_to_bytes(exported: ExportedProgram, partitioner_list: Iterable) -> bytes:
    pte, data = lower(exported, partitioner_list)
    if data:
        raise ValueError(f"lower_to_bytes: the program has external data {sorted(data)}: use lower()")
    return pte


def _reproducible_etrecord(archive: bytes) -> bytes:
    """The ETRecord zip with what differs between identical exports fixed: ETRecord.save stamps
    each entry with the current time, and the graphs' "graph_id" (and export_graph_id) are
    Python object ids. Entries are dated 1980-01-01; graph ids are renumbered 1, 2, ... in order
    of first appearance, the same mapping in every entry, so the references between them hold."""
    import io
    import re
    import zipfile

    ids: dict[bytes, bytes] = {}

    def renumber(m: re.Match) -> bytes:
        return m.group(1) + ids.setdefault(m.group(2), str(len(ids) + 1).encode())

    graph_id = re.compile(rb'(\\*"graph_id\\*": )(\d+)')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = graph_id.sub(renumber, src.read(info))
            if info.filename == "export_graph_id":
                data = ids.setdefault(data.strip(), str(len(ids) + 1).encode())
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            dst.writestr(fixed, data)
    return out.getvalue()
