"""The export pipeline: build or take a model, compress it, write dense.pte, lutham.pte and
report.json as one output set.

dense.pte:  the KAN layers as ordinary ATen ops (ExecuTorch's portable/optimized kernels).
lutham.pte: every KAN layer delegated to LuthamBackend; codebooks in named data.
In both the backbone runs on XNNPACK (fp32); see lower/lowering.py.
Both are memory-planned (greedy); the three files are committed together (outputs.py).
"""

from __future__ import annotations

import gc
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch

# lower/lowering.py and int8_baseline.py import ExecuTorch's compiler (~3 s): the functions that
# lower import them, so an export with bad options fails before paying for it.
from ..compress import CompressionConfig, compress_model, relative_output_error
from ..compress.finetune import DISTILL_EPOCHS, distill_codebooks, load_calibration
from ..compress.int8 import COMPUTE_MODES, INT8_MAX_CODEBOOK, int8_unsupported, set_compute
from ..lower.serialization.external_data import read_codebooks
from ..measure import kan_parameter_bytes, lutham_part_bytes
from ..limits import check_layer
from ..model.convert import convert, kan_layer_names
from ..model.kan import KANLinear
from ..model.multihead import ModelConfig, build_model, check_memory
from .methods import FORWARD, check_methods, method_modules, method_names
from .outputs import OutputSet, releases_directory_on_failure


def to_executorch_bytes(model: torch.nn.Module, example: torch.Tensor, delegate: bool, max_batch: int = 1,
                        backbone_xnnpack: bool = True) -> bytes:
    """The .pte bytes; lower/lowering.py says which partitioner takes what (backbone: XNNPACK) and
    makes the batch dynamic (1..max_batch) when max_batch > 1."""
    return to_executorch_files(model, example, delegate, max_batch, backbone_xnnpack)[0]


def to_executorch_files(model: torch.nn.Module, example: torch.Tensor, delegate: bool, max_batch: int = 1,
                        backbone_xnnpack: bool = True, external_data: bool = False) -> tuple[bytes, bytes | None]:
    """The .pte bytes and, with external_data, the lutham.ptd bytes holding every codebook."""
    program = lower_program(model, example, delegate, max_batch, backbone_xnnpack, external_data)
    return program.buffer, external_data_of(program) if external_data else None


def lower_program(model: torch.nn.Module, example: torch.Tensor, delegate: bool, max_batch: int = 1,
                  backbone_xnnpack: bool = True, external_data: bool = False, step: Callable[[str], None] | None = None,
                  etrecord: bool = False, methods: str = FORWARD):
    """The ExecutorchProgramManager of `model` (write it with its write_to_file); step(name) hears
    of each step before it starts; with etrecord it also holds the ETRecord (export --etrecord).
    methods "per-head": one program with the methods of exporter/methods.py (backbone, head_k, forward)."""
    if step is not None:
        step("torch.export")
    from ..lower import lowering

    if methods == FORWARD:
        exported = lowering.export_program(model, example, max_batch)
    else:
        exported = {name: lowering.export_program(module, x, max_batch) for name, (module, x) in method_modules(model, example).items()}
    return lowering.lower_program(exported, lowering.partitioners(delegate, backbone_xnnpack, external_data), step, etrecord)


def _steps(report: Callable[[str, float], None], label: str, start: float, end: float, count: int = 3) -> Callable[[str], None]:
    """A step callback for lower_program: '<label>: <step> (i/count)', spread over start..end."""
    done = [0]

    def step(name: str) -> None:
        report(f"{label}: {name} ({done[0] + 1}/{count})", start + (end - start) * done[0] / count)
        done[0] += 1

    return step


def external_data_of(program) -> bytes | None:
    """The lutham.ptd bytes holding every codebook (None if the program has no external data)."""
    from ..lower import lowering

    data = lowering.external_data(program)
    if set(data) - {lowering.EXTERNAL_DATA_TAG}:
        raise RuntimeError(f"unexpected external data files {sorted(data)}")
    return data.get(lowering.EXTERNAL_DATA_TAG)


ProgressFn = Callable[[str, float], None]

# Share of the progress bar each stage takes.
_STAGES = {"build": (0.0, 0.05), "compress": (0.05, 0.45), "error": (0.45, 0.5), "dense": (0.5, 0.8), "lutham": (0.8, 1.0)}

# Inputs used to measure the output error of the compressed model against the dense one.
ERROR_BATCH = 8


def _stage_progress(progress: ProgressFn | None, stage: str) -> Callable[[str, float], None]:
    lo, hi = _STAGES[stage]

    def report(label: str, fraction: float) -> None:
        if progress is not None:
            progress(label, lo + (hi - lo) * max(0.0, min(1.0, fraction)))

    return report


@releases_directory_on_failure  # the --out lock of a failed export
def export(options: dict, progress: ProgressFn | None = None, model: torch.nn.Module | None = None,
           example: torch.Tensor | None = None) -> dict:
    """Build the model, compress it, write dense.pte, lutham.pte and report.json into options['out'].

    options: backbone, heads, widths (list or None), grid, order, weights, seed, out,
             codebook_size, codebook_scope, int8 (bool), gain_bits, bias_bits, base_bits, batch,
             max_batch (programs serve batch 1..max_batch), int8_baseline (bool, default true),
             external_data (bool: codebooks in lutham.ptd), codebooks_from (a .ptd whose codebooks
             are reused instead of trained), finetune_codebook (bool) with calibration (a .npz of
             inputs) and finetune_epochs: the codebooks and gains distilled against the dense
             model's outputs on those inputs before lowering (compress/finetune.py); etrecord (bool: lutham.etrecord for the Inspector);
             compute ("float", the default, or "int8": LuthamBackend's integer mode, compress/int8.py);
             or model ("file.pt", "file.pt2", "file.py:fn"), weights, input_shape for the user's model,
             trust_pickle (unpickle Python objects from those files, which runs their code).
    Returns the report (also written as report.json; its paths are relative to out, it holds no
    timing: the CLI measures and prints that).
    """
    out = Path(options.get("out") or "out")
    model_config = ModelConfig(
        backbone=options.get("backbone", "resnet50"),
        heads=int(options.get("heads", 1)),
        widths=[int(w) for w in options["widths"]] if options.get("widths") else None,
        grid=int(options.get("grid", ModelConfig.grid)),
        order=int(options.get("order", ModelConfig.order)),
        seed=int(options.get("seed", 0)),
        weights=options.get("weights"),
        batch=int(options.get("batch", 1)),
        allow_partial=bool(options.get("allow_partial", False)),
    )
    int8 = bool(options.get("int8", True))
    bits = {
        k: int(options[k]) for k in ("gain_bits", "bias_bits", "base_bits") if options.get(k) is not None
    }
    common = dict(codebook_size=int(options.get("codebook_size", CompressionConfig.codebook_size)),
                  scope=options.get("codebook_scope", "heads"), seed=model_config.seed)
    if bits and not int8:
        raise ValueError(f"--{'/--'.join(k.replace('_', '-') for k in bits)} cannot be used with --fp32 (everything is stored as float32)")
    compression = CompressionConfig(**common, **bits) if int8 else CompressionConfig.fp32(**common)
    model_config.validate()
    compression.validate()
    compute = str(options.get("compute") or "float")
    if compute not in COMPUTE_MODES:
        raise ValueError(f"--compute must be float or int8, got '{compute}'")
    if compute == "int8" and not int8:
        raise ValueError("--compute int8 needs integer gains, biases and base weights (it cannot be used with --fp32)")
    if compute == "int8" and compression.codebook_size > INT8_MAX_CODEBOOK:
        raise ValueError(f"--compute int8 takes a codebook of at most {INT8_MAX_CODEBOOK} words (one-byte indices), got --codebook-size {compression.codebook_size}")
    max_batch = int(options.get("max_batch") or 1)
    if max_batch < 1:
        raise ValueError(f"--max-batch must be at least 1, got {max_batch}")
    if model_config.weights and not os.path.isfile(model_config.weights):
        raise ValueError(f"--weights: no such file {model_config.weights}")
    check_memory(model_config)
    # Fail now, not after minutes of compression, if the outputs cannot be written.
    external_data = bool(options.get("external_data", False))
    reused = read_codebooks(options["codebooks_from"]) if options.get("codebooks_from") else None
    if reused and not int8:
        raise ValueError("--codebooks-from cannot be used with --fp32 (the given codebooks fix the storage)")
    finetune = _finetune_options(options, reused)
    etrecord = bool(options.get("etrecord"))
    methods = options.get("methods") or FORWARD
    check_methods(methods, user_model=model is not None or bool(options.get("model")))
    optional = {"lutham.ptd": external_data, "lutham.etrecord": etrecord}
    names = ("dense.pte", "lutham.pte", "report.json") + tuple(n for n, wanted in optional.items() if wanted)
    # An earlier export's lutham.ptd or lutham.etrecord no longer belongs to the new lutham.pte
    # (run --profile would name its layers from a stale ETRecord): removed in the same commit.
    outputs = OutputSet(out, names, remove=tuple(n for n, wanted in optional.items() if not wanted))
    outputs.prepare()

    _stage_progress(progress, "build")("build model", 0.0)
    if model is None and options.get("model"):  # the user's own model: its KAN layers converted
        from ..model.load import example_input, user_model

        model, shape = user_model(options["model"], options.get("weights"), options.get("input_shape"),
                                  trust_pickle=bool(options.get("trust_pickle", False)))
        example = example_input(shape, model_config.seed)
    if model is not None:
        dense = model
        error_input = example_error_input(example, model_config.seed)
        model_report = {"source": options.get("model") or "lutham.export", "input_shape": list(example.shape),
                        "kan_layers": kan_layer_names(dense), "seed": model_config.seed}
    else:
        dense = build_model(model_config)
        error_config = ModelConfig(**{**vars(model_config), "batch": ERROR_BATCH, "seed": model_config.seed + 1000})
        error_input = error_config.example_input()
        example = model_config.example_input()
        model_report = {**vars(model_config), "head_widths": model_config.head_widths()}
    for name, layer in dense.named_modules():  # the user's layers: what the runtime would refuse, before compressing
        if isinstance(layer, KANLinear):
            check_layer(f"layer {name}", layer.in_features, layer.out_features, layer.grid_size, layer.spline_order)
            if compute == "int8":
                reason = int8_unsupported(layer.basis_kind, 8, 1, 1, layer.in_features)
                if reason:
                    raise ValueError(f"--compute int8: layer {name}: {reason}")
    _stage_progress(progress, "build")("build model", 1.0)
    calibration = load_calibration(finetune["calibration"], tuple(example.shape[1:])) if finetune else None

    compress_progress = _stage_progress(progress, "compress")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clamping warnings are returned in the report instead
        compressed, compression_report = compress_model(dense, compression, compress_progress, codebooks=reused)

    finetune_report = None
    if finetune:
        compressed, finetune_report = distill_codebooks(dense, compressed, calibration, seed=model_config.seed,
                                                        epochs=finetune["epochs"], progress=_stage_progress(progress, "error"))
        finetune_report = {"calibration": {"path": os.path.relpath(finetune["calibration"], out),
                                           "sha256": _sha256(finetune["calibration"])}, **finetune_report}
    set_compute(compressed, compute)  # the int8 mode: the eager op then computes what LuthamBackend will
    _stage_progress(progress, "error")("output error", 0.0)
    output_error = relative_output_error(dense, compressed, error_input)

    _stage_progress(progress, "dense")("export dense.pte", 0.0)
    program = lower_program(dense, example, delegate=False, max_batch=max_batch,
                            step=_steps(_stage_progress(progress, "dense"), "export dense.pte", 0.0, 0.5))
    _stage_progress(progress, "dense")("write dense.pte", 0.5)
    dense_file = outputs.write("dense.pte", program.write_to_file)
    del program  # the emitted constants (~3 GB for 50 heads): gone before the next program is built
    gc.collect()
    dense_int8 = None
    if options.get("int8_baseline", True):
        from .int8_baseline import dense_int8_xnnpack_size

        _stage_progress(progress, "dense")("size of dense int8 (XNNPACK)", 0.6)
        dense_progress = _stage_progress(progress, "dense")
        dense_int8 = dense_int8_xnnpack_size(dense, example, max_batch,
                                             lambda label, fraction: dense_progress(label, 0.6 + 0.4 * fraction))
    _stage_progress(progress, "lutham")("export lutham.pte", 0.0)
    program = lower_program(compressed, example, delegate=True, max_batch=max_batch, external_data=external_data,
                            step=_steps(_stage_progress(progress, "lutham"), "export lutham.pte", 0.0, 0.9), etrecord=etrecord,
                            methods=methods)
    _stage_progress(progress, "lutham")("write lutham.pte", 0.9)
    lutham_file = outputs.write("lutham.pte", program.write_to_file)
    lutham_ptd = external_data_of(program) if external_data else None
    etrecord_bytes = None
    if etrecord:
        from ..lower.lowering import etrecord_bytes as etrecord_of

        etrecord_bytes = etrecord_of(program)
        outputs.add("lutham.etrecord", etrecord_bytes)
    del program
    gc.collect()
    if external_data:
        outputs.add("lutham.ptd", lutham_ptd)
    lutham_pte = outputs.written_path("lutham.pte").read_bytes()  # read back: the parts it holds
    _stage_progress(progress, "lutham")("done", 1.0)

    dense_kan = kan_parameter_bytes(dense)
    lutham_part = lutham_part_bytes(lutham_pte, lutham_ptd)
    lutham_kan = lutham_part["payload_bytes"] + lutham_part["codebook_bytes"]
    del lutham_pte
    lutham_deployed = lutham_file + (len(lutham_ptd) if lutham_ptd is not None else 0)
    report = {
        "model": model_report,
        "compression": vars(compression),
        "compute": compute,
        # Paths relative to --out and no timing: the same inputs give a byte-identical file.
        "dense": {"path": "dense.pte", "file_bytes": dense_file, "kan_bytes": dense_kan},
        # What users ship today: not written, only measured (int8_baseline.py says how).
        "dense_int8_xnnpack": dense_int8,
        "max_batch": max_batch,
        "lutham": {"path": "lutham.pte", "file_bytes": lutham_file, "kan_bytes": lutham_kan, **lutham_part},
        "ratio": {"file": dense_file / lutham_deployed, "kan": dense_kan / lutham_kan},
        "layers": compression_report.to_dict()["layers"],
        "warnings": compression_report.warnings,
        "output_relative_l2_error": output_error,
    }
    if methods != FORWARD:  # lutham run --method NAME runs one of them
        report["lutham"]["methods"] = method_names(compressed)
    if external_data:  # the .pte reads its codebooks from this file (--data at run time)
        report["lutham"]["external_data"] = {"path": "lutham.ptd", "file_bytes": len(lutham_ptd)}
    if finetune_report:
        report["finetune"] = finetune_report
    if etrecord_bytes is not None:  # lutham run --profile names the layers of its ETDump from it
        report["lutham"]["etrecord"] = {"path": "lutham.etrecord", "file_bytes": len(etrecord_bytes)}
    if reused:
        report["codebooks_from"] = {"path": os.path.relpath(options["codebooks_from"], out),
                                    "reused": compression_report.reused}
    outputs.add("report.json", (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
    outputs.commit()  # all three files or none
    return report


def _finetune_options(options: dict, reused) -> dict | None:
    """--finetune-codebook's settings, checked before any work; None without it."""
    calibration = options.get("calibration")
    epochs = options.get("finetune_epochs")
    if not options.get("finetune_codebook"):
        if calibration or epochs is not None:
            raise ValueError(f"{'--calibration' if calibration else '--finetune-epochs'} goes with --finetune-codebook")
        return None
    if not calibration:
        raise ValueError("--finetune-codebook needs --calibration inputs.npz (inputs shaped like the model's input)")
    if reused:
        raise ValueError("--finetune-codebook cannot be used with --codebooks-from (the shared codebooks are fixed)")
    epochs = DISTILL_EPOCHS if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"--finetune-epochs must be at least 1, got {epochs}")
    if not os.path.isfile(calibration):
        raise ValueError(f"--calibration: no such file {calibration}")
    return {"calibration": str(calibration), "epochs": epochs}


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def example_error_input(example: torch.Tensor, seed: int) -> torch.Tensor:
    """Inputs to measure the output error on: the example plus seeded noise of its own scale."""
    gen = torch.Generator().manual_seed(seed + 1000)
    scale = example.detach().float().std().clamp_min(1e-3) if example.numel() > 1 else torch.tensor(1.0)
    return example.detach().float() + 0.1 * scale * torch.randn(example.shape, generator=gen)


def export_model(model: torch.nn.Module, example_inputs, out_dir: str | os.PathLike, progress: ProgressFn | None = None,
                 **compression) -> dict:
    """`lutham.export`: converts the model's KAN layers, compresses them and writes dense.pte,
    lutham.pte and report.json into out_dir, as `lutham export` does.

    example_inputs: one input tensor (or a 1-tuple), the shape the .pte files take.
    compression: codebook_size, codebook_scope, int8, gain_bits, bias_bits, base_bits, seed, compute
    ("float" or "int8": how LuthamBackend computes the layers).
    """
    if isinstance(example_inputs, (tuple, list)):
        if len(example_inputs) != 1:
            raise ValueError(f"lutham.export takes one input tensor, got {len(example_inputs)}")
        example_inputs = example_inputs[0]
    if not isinstance(example_inputs, torch.Tensor):
        raise ValueError(f"example_inputs must be a tensor, got {type(example_inputs).__name__}")
    known = {"codebook_size", "codebook_scope", "int8", "gain_bits", "bias_bits", "base_bits", "seed", "compute"}
    unknown = sorted(set(compression) - known)
    if unknown:
        raise ValueError(f"unknown compression option(s) {unknown} (choose from {sorted(known)})")
    options = {**compression, "out": str(out_dir)}
    return export(options, progress, model=convert(model), example=example_inputs.detach().to(torch.float32).contiguous())
