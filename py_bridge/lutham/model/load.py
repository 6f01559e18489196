"""The user's own model for `lutham export --model` and `lutham eval --checkpoint`.

Accepted forms (the KAN layers are then converted by lutham.convert):
- `model.pt`: a pickled nn.Module (torch.save(model, ...)), or a state dict of KAN layers alone
  (efficient-kan / pykan / FastKAN keys under any prefix);
- `model.pt2`: a torch.export ExportedProgram (torch.export.save), unflattened into its modules;
- `my_net.py:build`: a function in the user's file that returns the nn.Module, usually with
  `--weights state.pt`, a state dict whose keys may carry any prefix (`module.`, `model.`, ...).
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import sys
from pathlib import Path

import torch
from torch import nn

from .convert import ConversionError, convert
from .kan import KAN, KANLinear
from .modules import kan_sizes

FACTORY = re.compile(r"^(?P<file>.+\.py):(?P<fn>[A-Za-z_][A-Za-z0-9_]*)$")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1].strip() if text else type(e).__name__


def pickle_refusal(err: BaseException, where: str) -> str | None:
    """The one line for torch's weights-only refusal (the file holds Python objects, e.g. the
    global it names); None for any other unpickling error."""
    wants = re.search(r"GLOBAL ([\w.]+)", str(err))
    if not str(err).startswith("Weights only load failed") or not wants:
        return None
    return f"{where} holds pickled Python objects ({wants.group(1)}), not only tensors; unpickling them runs code from the file"


def torch_error(err: BaseException) -> str:
    """The line of a torch.load error that says what is wrong (weights-only errors wrap it in advice)."""
    text = str(err)
    if text.startswith("Weights only load failed") and "WeightsUnpickler error:" in text:
        rest = text.split("WeightsUnpickler error:", 1)[1].strip()
        return rest.splitlines()[0].strip() if rest else type(err).__name__
    return _first_line(err)


def torch_load(path: Path, what: str, trust_pickle: bool = False):
    """torch.load, weights-only: tensors and plain containers. A file that also holds Python
    objects (a whole pickled nn.Module) runs code from the file when unpickled, so it is loaded
    only with trust_pickle (--trust-pickle); torch's own text is not passed on, as it advises
    exactly that unsafe reload."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refusal = pickle_refusal(e, f"{what} {path}")
        if refusal is None:
            raise ValueError(f"{what} {path} cannot be read by torch.load: {torch_error(e)}") from None
        if not trust_pickle:
            raise ValueError(refusal + ": pass --trust-pickle if you trust it, or save a state dict (model.state_dict()) "
                             "and give the code, my_net.py:build --weights") from None
    except Exception as e:
        raise ValueError(f"{what} {path} cannot be read by torch.load: {_first_line(e)}") from None
    try:  # the user said the file may run its code (a whole pickled module)
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{what} {path} cannot be read by torch.load: {_first_line(e)}") from None


def _state_dict(obj, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{where} is not a state dict (a dict of tensors)")
    return obj


def load_state_any_prefix(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Loads `state` into `model` when its keys equal the model's after removing or adding one
    common prefix (e.g. `module.` from DataParallel, `model.`); every key must match."""
    want = model.state_dict()
    names, have = set(want), set(state)
    candidates = [("", "")]
    probe = min(names, key=len) if names else ""
    for k in sorted(have):
        if k.endswith(probe) and k != probe:
            candidates.append((k[: -len(probe)], ""))  # strip this prefix from the checkpoint
        elif probe.endswith(k) and k != probe:
            candidates.append(("", probe[: -len(k)]))  # add this prefix to the checkpoint
    for strip, add in candidates:
        mapped = {add + k[len(strip):]: v for k, v in state.items() if k.startswith(strip)}
        if len(mapped) == len(state) and set(mapped) == names:
            bad = [k for k in want if tuple(mapped[k].shape) != tuple(want[k].shape)]  # model order: a stable message
            if bad:
                k = bad[0]
                raise ValueError(f"{where} does not fit the model: {k} has shape {tuple(mapped[k].shape)} in the checkpoint, "
                                 f"{tuple(want[k].shape)} in the model")
            model.load_state_dict(mapped, strict=True)
            return
    missing = sorted(names - have)[:3]
    unexpected = sorted(have - names)[:3]
    raise ValueError(f"{where} does not fit the model under any key prefix (model keys e.g. {missing}, checkpoint keys e.g. {unexpected})")


def _factory(file: str, fn: str, flag: str) -> nn.Module:
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"{flag}: no such file {file}")
    name = f"lutham_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickling and dataclasses need the module registered
    sys.path.insert(0, str(path.resolve().parent))  # the user's file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"{flag} {file}: importing it failed: {type(e).__name__}: {_first_line(e)}") from None
    finally:
        sys.path.pop(0)
    build = getattr(module, fn, None)
    if not callable(build):
        raise ValueError(f"{flag} {file}: no function '{fn}' in it")
    try:
        model = build()
    except Exception as e:
        raise ValueError(f"{flag} {file}:{fn}() failed: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{flag} {file}:{fn}() returned {type(model).__name__}, not an nn.Module")
    return model


def kan_state(state: dict[str, torch.Tensor]) -> tuple[list[int], int, int, dict[str, torch.Tensor]] | None:
    """(widths, grid size, order, state with keys `layers.{l}.*`) when every key of `state` is
    `<prefix><l>.<grid|base_weight|spline_weight|spline_scaler>` of a chain of efficient-kan
    layers (any prefix, e.g. `head.layers.`); None otherwise."""
    first = next((k for k in sorted(state) if k.endswith(".base_weight")), "")
    m = re.match(r"^(.*?)(\d+)\.base_weight$", first)
    if not m:
        return None
    prefix = m.group(1)
    sizes = kan_sizes(state, prefix)
    if sizes is None:
        return None
    widths, grid, order = sizes
    l = len(widths) - 1
    expected = {f"{prefix}{i}.{t}" for i in range(l) for t in ("grid", "base_weight", "spline_weight")}
    scalers = {f"{prefix}{i}.spline_scaler" for i in range(l)}
    if set(state) not in (expected, expected | scalers):
        return None
    mapped = {"layers." + k[len(prefix):]: v for k, v in state.items()}
    for i in range(l):  # enable_standalone_scale_spline=False: no scalers, i.e. all ones
        mapped.setdefault(f"layers.{i}.spline_scaler", torch.ones_like(mapped[f"layers.{i}.base_weight"]))
    return widths, grid, order, mapped


def _kan_from_state(state: dict[str, torch.Tensor]) -> nn.Module | None:
    found = kan_state(state)
    if found is None:
        return None
    widths, grid, order, mapped = found
    model = KAN(widths, grid_size=grid, spline_order=order)
    model.load_state_dict(mapped)
    return model


def load_user_model(spec: str, weights: str | None = None, flag: str = "--model", trust_pickle: bool = False) -> nn.Module:
    """The user's model as given (not converted yet), in eval mode."""
    m = FACTORY.match(spec)
    if m:
        model = _factory(m.group("file"), m.group("fn"), flag)
    else:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"{flag}: no such file {spec}")
        if path.suffix == ".pt2":
            try:
                program = torch.export.load(str(path))
            except Exception as e:
                raise ValueError(f"{flag} {spec} is not a torch.export program: {_first_line(e)}") from None
            shape = _program_input_shape(program)
            model = torch.export.unflatten(program)
            model.example_shape = shape
            # Running the graphs needs no example values; with dynamic shapes they hold symbolic
            # tensors that deepcopy (compression copies the model) refuses.
            for m in model.modules():
                graph = getattr(m, "graph", None)
                if isinstance(graph, torch.fx.Graph):
                    for node in graph.nodes:
                        for key in ("val", "example_value", "tensor_meta", "unbacked_bindings"):
                            node.meta.pop(key, None)
        else:
            obj = torch_load(path, flag, trust_pickle)
            if isinstance(obj, nn.Module):
                model = obj
            else:
                state = _state_dict(obj, f"{flag} {spec}")
                model = _kan_from_state(state)
                if model is None:
                    raise ValueError(f"{flag} {spec} is a state dict of more than KAN layers (e.g. {sorted(state)[:3]}): "
                                     f"pass the code that builds the model, {flag} my_net.py:build --weights {spec}")
    if weights:
        wpath = Path(weights)
        if not wpath.is_file():
            raise ValueError(f"--weights: no such file {weights}")
        load_state_any_prefix(model, _state_dict(torch_load(wpath, "--weights", trust_pickle), f"--weights {weights}"), f"--weights {weights}")
    return model.eval()


def _program_input_shape(program) -> list[int] | None:
    specs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    if len(specs) != 1:
        return None
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == specs[0].arg.name:
            val = node.meta.get("val")
            # A dynamic dim is a SymInt: take its example value; int() on it would add a guard
            # that specialises the program to that size.
            return [d if isinstance(d, int) else int(d.node.hint) for d in val.shape] if val is not None else None
    return None


def infer_input_shape(model: nn.Module) -> list[int] | None:
    """(1, features) when the model's first layer with weights takes a flat vector (a KAN,
    Linear or LayerNorm layer); a .pt2 program's own input shape; otherwise None."""
    shape = getattr(model, "example_shape", None)
    if shape:
        return list(shape)
    for _, m in model.named_modules():
        if isinstance(m, KANLinear):
            return [1, m.in_features]
        if isinstance(m, nn.Linear):
            return [1, m.in_features]
        if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
            return [1, m.normalized_shape[0]]
        if any(True for _ in m.parameters(recurse=False)):
            return None  # a conv or another layer whose input size its weights do not tell
    return None


def example_input(shape: list[int], seed: int) -> torch.Tensor:
    """Seeded inputs spread over [-1, 1], the usual KAN grid range."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=gen) * 2 - 1


def user_model(spec: str, weights: str | None, input_shape: list[int] | None, flag: str = "--model",
               trust_pickle: bool = False) -> tuple[nn.Module, list[int]]:
    """(converted model, input shape) for the CLI; ValueError with one clear line otherwise."""
    model = load_user_model(spec, weights, flag, trust_pickle)
    try:
        converted = convert(model, inplace=True)  # the model was loaded for this alone
    except ConversionError as e:
        raise ValueError(f"{flag} {spec}: {e}") from None
    shape = list(input_shape) if input_shape else infer_input_shape(converted)
    if not shape:
        raise ValueError(f"{flag} {spec}: cannot tell the input shape of this model: pass --input-shape, e.g. 1,1,28,28")
    if any(int(d) < 1 for d in shape):
        raise ValueError(f"--input-shape must be positive integers, got {shape}")
    try:
        with torch.no_grad():
            converted(example_input(shape, 0))
    except Exception as e:
        raise ValueError(f"{flag} {spec} does not accept inputs of shape {shape}: {_first_line(e)}") from None
    return converted, shape
