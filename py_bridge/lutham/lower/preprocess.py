"""LuthamBackend: turns one lutham::kan_linear partition into a payload + a named codebook."""

from __future__ import annotations

from typing import final

import numpy as np
import torch
from executorch.exir._serialize._named_data_store import NamedDataStore
from executorch.exir.backend.backend_details import BackendDetails, PreprocessResult
from executorch.exir.backend.utils import DelegateMappingBuilder
from torch._export.utils import get_buffer, get_lifted_tensor_constant, get_param
from torch.export import ExportedProgram

from ..compress.layer import KAN_LINEAR_ARGS, LAYER_TENSORS
from ..compress.quant import Quantized
from ..model.kan import BSPLINE
from .partitioner import external_tag, is_kan_linear
from .serialization.payload import CODEBOOK_ALIGNMENT, LayerData, codebook_key, write_codebook, write_payload

# The delegate events LuthamBackend logs to ExecuTorch's event tracer, by integer id (the same
# ids in delegate/runtime/LuthamBackend.cpp): each maps to the partition's kan_linear node, so
# executorch.devtools.Inspector attributes it to that layer.
DELEGATE_EVENTS = {0: "layer", 1: "basis", 2: "tables+edges"}


def _constant(program: ExportedProgram, node: torch.fx.Node) -> np.ndarray:
    for getter in (get_param, get_buffer, get_lifted_tensor_constant):
        t = getter(program, node)
        if t is not None:
            return t.detach().cpu().contiguous().numpy()
    raise ValueError(f"LuthamBackend: argument {node.name} of kan_linear is not a constant of the program")


def layer_from_node(program: ExportedProgram, node: torch.fx.Node) -> tuple[LayerData, Quantized]:
    args = dict(zip(KAN_LINEAR_ARGS, node.args))  # by name: the op's argument list is defined once
    t = {name: _constant(program, args[name]) for name in LAYER_TENSORS}
    ints = {name: int(args[name]) for name, kind in KAN_LINEAR_ARGS.items() if kind == "SymInt"}
    codebook = Quantized(t["codebook"], t["codebook_scales"].astype(np.float32), ints["codebook_bits"])
    blob = write_codebook(codebook)
    out_features, in_features = t["indices"].shape
    order = ints["spline_order"]
    basis_kind = int(args["basis_kind"])
    # B-splines: knots (in, G+2k+1); RBF: knots are the (in, G) centers, so G is their count.
    grid_size = t["knots"].shape[1] - 2 * order - 1 if basis_kind == BSPLINE else t["knots"].shape[1]
    layer = LayerData(
        in_features=in_features,
        out_features=out_features,
        grid_size=grid_size,
        spline_order=order,
        knots=t["knots"].astype(np.float32),
        codebook_key=codebook_key(blob),
        codebook_size=codebook.values.shape[0],
        codebook_dim=codebook.values.shape[1],
        index_bits=ints["index_bits"],
        indices=t["indices"],
        gains=Quantized(t["gains"], t["gain_scales"], ints["gain_bits"]),
        biases=Quantized(t["biases"], t["bias_scales"], ints["bias_bits"]),
        base_weight=Quantized(t["base_weight"], t["base_scales"], ints["base_bits"]),
        r2=float(args["r2"]),
        basis_kind=basis_kind,
        rbf_denominator=float(args["rbf_denominator"]),
        compute=ints["compute"],
    )
    return layer, codebook


@final
class LuthamBackend(BackendDetails):
    @staticmethod
    def preprocess(edge_program: ExportedProgram, compile_specs) -> PreprocessResult:
        nodes = [n for n in edge_program.graph_module.graph.nodes if n.op == "call_function"]
        kan = [n for n in nodes if is_kan_linear(n)]
        if len(kan) != 1 or len(nodes) != 1:
            raise ValueError(f"LuthamBackend takes exactly one lutham::kan_linear per partition, got {[str(n.target) for n in nodes]}")
        layer, codebook = layer_from_node(edge_program, kan[0])
        debug_handles = DelegateMappingBuilder(generated_identifiers=False)
        for identifier in DELEGATE_EVENTS:
            debug_handles.insert_delegate_mapping_entry(nodes=kan[0], identifier=identifier)
        store = NamedDataStore()
        store.add_named_data(layer.codebook_key, write_codebook(codebook), alignment=CODEBOOK_ALIGNMENT,
                             external_tag=external_tag(compile_specs))
        return PreprocessResult(
            processed_bytes=write_payload(layer),
            debug_handle_map=debug_handles.get_delegate_mapping(),
            data_store_output=store.get_named_data_store_output(),
        )
