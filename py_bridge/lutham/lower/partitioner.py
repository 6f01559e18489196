"""LuthamPartitioner: every lutham::kan_linear node becomes its own LuthamBackend delegate.

Nothing else is taken: the backbone and the glue ops stay with ExecuTorch's kernels.
One delegate per layer keeps each payload self-contained; layers that share a codebook
reference it by key in the program's named data instead of sharing a constant.
"""

from __future__ import annotations

import torch
from executorch.exir.backend.partitioner import DelegationSpec, Partitioner, PartitionResult
from executorch.exir.backend.utils import tag_constant_data
from executorch.exir.dialects._ops import ops as exir_ops
from torch.export import ExportedProgram

BACKEND_ID = "LuthamBackend"
# Compile spec naming the external-data tag: preprocess then puts the codebooks in <tag>.ptd
# (NamedDataStore's external_tag) instead of the .pte's named data.
EXTERNAL_TAG_SPEC = "external_tag"


def external_tag(compile_specs) -> str | None:
    """The external-data tag the compile specs ask for, or None (codebooks stay in the .pte)."""
    return next((spec.value.decode() for spec in compile_specs if spec.key == EXTERNAL_TAG_SPEC), None)


def is_kan_linear(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target == exir_ops.edge.lutham.kan_linear.default


class LuthamPartitioner(Partitioner):
    def __init__(self, compile_specs=None):
        super().__init__()
        self.delegation_spec = DelegationSpec(BACKEND_ID, list(compile_specs or []))

    def partition(self, exported_program: ExportedProgram) -> PartitionResult:
        tags: dict[str, DelegationSpec] = {}
        for node in exported_program.graph_module.graph.nodes:
            if is_kan_linear(node):
                tag = f"lutham_{len(tags)}"
                node.meta["delegation_tag"] = tag
                tags[tag] = self.delegation_spec
        # The layer's constants (indices, gains, ...) go into its delegate with it.
        tag_constant_data(exported_program)
        return PartitionResult(tagged_exported_program=exported_program, partition_tags=tags)
