"""lutham.convert: the KAN layers of other libraries, found anywhere inside any nn.Module, become
LUTHAM layers (lutham.kan.KANLinear) with the same outputs; everything else is kept as it is.

Layers are recognised by their tensors and attributes, never by class name:
- efficient-kan KANLinear: grid (in, G+2k+1), base_weight (out, in), spline_weight (out, in, G+k),
  spline_scaler (out, in) unless enable_standalone_scale_spline=False; any grid, also updated
  (non-uniform) grids. Our KANLinear has this layout, so it maps tensor for tensor.
- pykan KANLayer: coef (in, out, G+k), scale_base, scale_sp, mask (in, out), grid, k. A mask
  that zeroes edges is exact: it is folded into the base weight and spline scaler (both 0).
- pykan MultKAN: its KANLayers plus the per-node affine maps (subnode and node scale/bias)
  as ordinary ops. Refused: symbolic branches in use, multiplication nodes.
- FastKAN FastKANLayer: rbf (grid (G,) centers, denominator h), spline_linear (out, in*G),
  layernorm and base_linear (out, in) + bias. The KAN node gets the RBF part; LayerNorm, and the
  base linear (which FastKAN applies to x BEFORE the LayerNorm) stay ordinary ops around it.
Anything that cannot be converted exactly raises ConversionError naming the layer.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .kan import BSPLINE, RBF, KANLinear, LuthamKANLayer
from .modules import replace_module


class ConversionError(ValueError):
    """A KAN layer that LUTHAM cannot reproduce exactly (the message names the layer)."""


# ---------------------------------------------------------------- LUTHAM-side modules


class PykanNetwork(nn.Module):
    """pykan's MultKAN without multiplication nodes or symbolic branches: per layer a KAN layer,
    then the subnode affine map and the node affine map (exact as ordinary elementwise ops)."""

    def __init__(self, layers: list[KANLinear], affines: list[tuple[torch.Tensor, ...]], input_id: torch.Tensor | None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.register_buffer("input_id", input_id)
        for l, (sub_scale, sub_bias, node_scale, node_bias) in enumerate(affines):
            self.register_buffer(f"subnode_scale_{l}", sub_scale)
            self.register_buffer(f"subnode_bias_{l}", sub_bias)
            self.register_buffer(f"node_scale_{l}", node_scale)
            self.register_buffer(f"node_bias_{l}", node_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_id is not None:
            x = x.index_select(1, self.input_id)
        for l, layer in enumerate(self.layers):
            x = layer(x)
            x = getattr(self, f"subnode_scale_{l}") * x + getattr(self, f"subnode_bias_{l}")
            x = getattr(self, f"node_scale_{l}") * x + getattr(self, f"node_bias_{l}")
        return x


class PykanLayerOutputs(nn.Module):
    """A standalone pykan KANLayer returns (y, preacts, postacts, postspline); this keeps that
    tuple shape for the caller: y and preacts exactly, None for pykan's per-edge plotting data."""

    def __init__(self, layer: KANLinear):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor):
        y = self.layer(x)
        preacts = x[:, None, :].expand(x.shape[0], y.shape[1], x.shape[1])
        return y, preacts, None, None


class FastKANBlock(nn.Module):
    """FastKAN's layer around a LUTHAM RBF layer: y = kan(layernorm(x)) + base_linear(silu(x)).

    Without a LayerNorm the base weight sits inside the KAN node and only its bias is added here."""

    def __init__(self, kan: KANLinear, layernorm: nn.Module | None, base_linear: nn.Module | None, base_bias: torch.Tensor | None):
        super().__init__()
        self.kan = kan
        self.layernorm = layernorm
        self.base_linear = base_linear
        self.register_buffer("base_bias", base_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.kan(self.layernorm(x) if self.layernorm is not None else x)
        if self.base_linear is not None:
            y = y + self.base_linear(F.silu(x))
        if self.base_bias is not None:
            y = y + self.base_bias
        return y


class SizeArgsDropped(nn.Module):
    """In a module unflattened from a .pt2 with dynamic shapes, each submodule is called with its
    tensor input plus the symbolic sizes its graph uses; the converted layer takes the tensor only."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, *args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]  # the sizes come first, as ints
        return self.layer(tensors[0])


# ---------------------------------------------------------------- recognition


def _tensor(m: nn.Module, name: str, dim: int | None = None) -> torch.Tensor | None:
    t = getattr(m, name, None)
    if isinstance(t, torch.Tensor) and (dim is None or t.dim() == dim):
        return t
    return None


def _graph_calls(m) -> list | None:
    """The call_function nodes of a module that is an FX graph (torch.export.unflatten's
    InterpreterModules, where attributes like `base_activation` are graphs); else None."""
    graph = getattr(m, "graph", None)
    if not isinstance(graph, torch.fx.Graph):
        return None
    return [n for n in graph.nodes if n.op == "call_function"]


def _is_silu(f) -> bool:
    if isinstance(f, nn.SiLU) or f is nn.SiLU or f is F.silu:
        return True
    calls = _graph_calls(f)
    return calls is not None and len(calls) == 1 and "silu" in str(calls[0].target)


def _rbf_denominator(name: str, rbf: nn.Module) -> float:
    """h of FastKAN's exp(-((x - c) / h)^2): its `denominator`; in an exported graph the constant
    x - c is divided by; fast-kan's first releases had no denominator, exp(-(x - c)^2): h = 1."""
    if hasattr(rbf, "denominator"):
        return float(rbf.denominator)
    calls = _graph_calls(rbf)
    if calls is None:
        return 1.0
    divs = [n.args[1] for n in calls if "div" in str(n.target) and isinstance(n.args[1], (int, float))]
    if len(divs) == 1:
        return float(divs[0])
    if not divs and not any("mul" in str(n.target) for n in calls):
        return 1.0
    raise ConversionError(f"{name}.rbf: cannot read the RBF denominator from its graph")


def _check_silu(name: str, f) -> None:
    if not _is_silu(f):
        what = type(f).__name__ if isinstance(f, nn.Module) else getattr(f, "__name__", repr(f))
        raise ConversionError(f"{name or 'the model'}: base activation {what} is not SiLU; LUTHAM layers compute base_weight * silu(x)")


def _check_knots(name: str, grid: torch.Tensor) -> None:
    if not bool((grid[:, 1:] > grid[:, :-1]).all()):
        raise ConversionError(f"{name or 'the model'}: its grid has repeated or decreasing knots; LUTHAM needs strictly increasing knots per input")


def _kan_linear(in_f: int, out_f: int, grid: torch.Tensor, order: int, base_weight, spline_weight, spline_scaler,
                basis_kind: int = BSPLINE, rbf_denominator: float = 0.0) -> KANLinear:
    """A LUTHAM layer holding exactly these tensors (float32 copies)."""
    d = spline_weight.shape[-1]
    layer = KANLinear.__new__(KANLinear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = in_f, out_f
    layer.grid_size, layer.spline_order = d - order, order
    layer.scale_noise, layer.scale_base, layer.scale_spline = 0.1, 1.0, 1.0
    layer.basis_kind, layer.rbf_denominator = basis_kind, float(rbf_denominator)
    f32 = lambda t: t.detach().to(torch.float32).clone().contiguous()  # noqa: E731
    layer.register_buffer("grid", f32(grid))
    layer.base_weight = nn.Parameter(f32(base_weight))
    layer.spline_weight = nn.Parameter(f32(spline_weight))
    layer.spline_scaler = nn.Parameter(f32(spline_scaler))
    return layer


def _efficient_kan(name: str, m: nn.Module) -> KANLinear | None:
    grid, base, spline = _tensor(m, "grid", 2), _tensor(m, "base_weight", 2), _tensor(m, "spline_weight", 3)
    if grid is None or base is None or spline is None or _tensor(m, "coef") is not None:
        return None
    out_f, in_f = base.shape
    d = spline.shape[2]
    order = grid.shape[1] - d - 1
    if spline.shape[:2] != (out_f, in_f) or grid.shape[0] != in_f or order < 0:
        raise ConversionError(f"{name}: efficient-kan tensors do not fit together: grid {tuple(grid.shape)}, base_weight "
                              f"{tuple(base.shape)}, spline_weight {tuple(spline.shape)}")
    if getattr(m, "spline_order", order) != order:
        raise ConversionError(f"{name}: spline_order {m.spline_order} does not match its grid ({grid.shape[1]} knots for {d} coefficients)")
    _check_silu(name, getattr(m, "base_activation", nn.SiLU()))
    _check_knots(name, grid)
    scaler = _tensor(m, "spline_scaler", 2)
    if scaler is None or not getattr(m, "enable_standalone_scale_spline", True):
        scaler = torch.ones(out_f, in_f)
    return _kan_linear(in_f, out_f, grid, order, base, spline, scaler)


def _pykan_layer(name: str, m: nn.Module) -> KANLinear | None:
    """pykan KANLayer -> KANLinear: spline_weight = coef^T, base = (scale_base*mask)^T, scaler = (scale_sp*mask)^T."""
    coef, grid = _tensor(m, "coef", 3), _tensor(m, "grid", 2)
    sb, sp, mask = _tensor(m, "scale_base", 2), _tensor(m, "scale_sp", 2), _tensor(m, "mask", 2)
    if coef is None or grid is None or sb is None or sp is None or mask is None:
        return None
    in_f, out_f, d = coef.shape
    order = int(getattr(m, "k", grid.shape[1] - d - 1))
    if grid.shape != (in_f, d + order + 1) or sb.shape != (in_f, out_f) or sp.shape != (in_f, out_f) or mask.shape != (in_f, out_f):
        raise ConversionError(f"{name}: pykan tensors do not fit together: coef {tuple(coef.shape)}, grid {tuple(grid.shape)}, k {order}")
    _check_silu(name, getattr(m, "base_fun", nn.SiLU()))
    _check_knots(name, grid)
    with torch.no_grad():
        return _kan_linear(in_f, out_f, grid, order, (sb * mask).T, coef.permute(1, 0, 2), (sp * mask).T)


def _pykan_network(name: str, m: nn.Module) -> PykanNetwork | None:
    act_fun = getattr(m, "act_fun", None)
    if not isinstance(act_fun, nn.ModuleList) or not all(hasattr(m, a) for a in ("node_scale", "node_bias", "subnode_scale", "subnode_bias", "width")):
        return None
    prefix = f"{name}." if name else ""
    widths = [w if isinstance(w, (list, tuple)) else [w, 0] for w in m.width]
    for l, w in enumerate(widths[1:]):
        if w[1] > 0:
            raise ConversionError(f"{prefix}act_fun.{l}: layer {l} feeds {w[1]} multiplication node(s) (width {m.width}); "
                                  f"LUTHAM converts sums of edges only")
    symbolic = getattr(m, "symbolic_fun", None)
    if getattr(m, "symbolic_enabled", False) and symbolic is not None:
        for l, sym in enumerate(symbolic):
            used = (sym.mask != 0).nonzero().tolist()
            if used:
                j, i = used[0]
                fn = sym.funs_name[j][i] if hasattr(sym, "funs_name") else "?"
                raise ConversionError(f"{prefix}symbolic_fun.{l}: {len(used)} edge(s) use pykan's symbolic branch (e.g. input {i} -> "
                                      f"output {j}: '{fn}'); LUTHAM converts spline edges only: fit them back "
                                      f"(model.unfix_symbolic) or keep this layer in PyTorch")
    layers = [_pykan_layer(f"{prefix}act_fun.{l}", layer) for l, layer in enumerate(act_fun)]
    if any(layer is None for layer in layers):
        raise ConversionError(f"{prefix}act_fun: not every layer is a pykan KANLayer")
    f32 = lambda t: t.detach().to(torch.float32).clone()  # noqa: E731
    affines = [tuple(f32(getattr(m, a)[l]) for a in ("subnode_scale", "subnode_bias", "node_scale", "node_bias")) for l in range(len(layers))]
    input_id = getattr(m, "input_id", None)
    if input_id is not None:
        input_id = input_id.detach().long().clone()
        if bool((input_id == torch.arange(len(input_id))).all()):
            input_id = None  # the identity permutation: no op in the graph
    return PykanNetwork(layers, affines, input_id)


def _fastkan(name: str, m: nn.Module) -> FastKANBlock | None:
    rbf = getattr(m, "rbf", None)
    centers = _tensor(rbf, "grid") if isinstance(rbf, nn.Module) else None
    if centers is None:
        return None
    spline_linear = getattr(m, "spline_linear", None)  # an nn.Linear, or its graph in a .pt2
    if isinstance(spline_linear, nn.Module) and _tensor(spline_linear, "weight", 2) is not None:
        w = spline_linear.weight
    elif _tensor(m, "spline_weight", 3) is not None:  # fast-kan's first releases: spline_weight (out, in, G)
        w = m.spline_weight.reshape(m.spline_weight.shape[0], -1)
    else:
        return None
    g = centers.shape[-1]
    out_f, in_g = w.shape
    in_f = in_g // g
    if in_f * g != in_g or (centers.dim() == 2 and centers.shape[0] != in_f):
        raise ConversionError(f"{name}: FastKAN tensors do not fit together: {g} centers, spline weight {tuple(w.shape)}")
    if getattr(spline_linear, "bias", None) is not None:
        raise ConversionError(f"{name}: spline_linear has a bias; FastKAN's has none")
    denominator = _rbf_denominator(name, rbf)
    grid = centers.expand(in_f, g) if centers.dim() == 1 else centers
    if g < 2 or not bool((grid[:, 1:] > grid[:, :-1]).all()):
        raise ConversionError(f"{name}: FastKAN needs at least 2 increasing RBF centers")
    layernorm = getattr(m, "layernorm", None)
    if not getattr(m, "use_layernorm", True):
        layernorm = None
    base_linear = getattr(m, "base_linear", None) if getattr(m, "use_base_update", True) else None
    if base_linear is not None:
        _check_silu(name, getattr(m, "base_activation", nn.SiLU()))
        if _tensor(base_linear, "weight", 2) is None or base_linear.weight.shape != (out_f, in_f):
            raise ConversionError(f"{name}: base_linear {tuple(base_linear.weight.shape)} does not fit {in_f} -> {out_f}")
    with torch.no_grad():
        spline = w.reshape(out_f, in_f, g)
        inside = base_linear is not None and layernorm is None  # base and spline see the same x
        base_w = base_linear.weight if inside else torch.zeros(out_f, in_f)
        kan = _kan_linear(in_f, out_f, grid, 0, base_w, spline, torch.ones(out_f, in_f), RBF, denominator)
        bias = base_linear.bias.detach().clone() if inside and getattr(base_linear, "bias", None) is not None else None
    return FastKANBlock(kan, copy.deepcopy(layernorm), copy.deepcopy(base_linear) if not inside else None, bias)


# Tried in this order on every module; the first that recognises it converts it.
_RECOGNISERS = (_pykan_network, _fastkan, _efficient_kan, _pykan_layer)


def _convert_one(name: str, m: nn.Module) -> nn.Module | None:
    if isinstance(m, LuthamKANLayer):
        return m
    for recognise in _RECOGNISERS:
        new = recognise(name, m)
        if new is not None:
            return PykanLayerOutputs(new) if recognise is _pykan_layer else new
    return None


def _find(parent: nn.Module, prefix: str, found: dict[int, tuple[str, nn.Module, nn.Module]]) -> None:
    """Converted replacements of the recognised KAN modules below `parent`, by id of the original."""
    for child_name, child in parent.named_children():
        name = f"{prefix}{child_name}"
        new = _convert_one(name, child)
        if new is None:
            _find(child, f"{name}.", found)
        else:
            found.setdefault(id(child), (name, child, new))


def convert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` whose KAN layers (efficient-kan, pykan, FastKAN) are LUTHAM layers with
    the same outputs, in eval mode; `model` itself is untouched unless `inplace` (then its KAN
    layers are swapped where they sit and it is returned). Raises ConversionError."""
    if not isinstance(model, nn.Module):
        raise ConversionError(f"convert takes an nn.Module, got {type(model).__name__}")
    root = _convert_one("", model)
    if root is not None:
        return (copy.deepcopy(root) if root is model else root).eval()
    found: dict[int, tuple[str, nn.Module, nn.Module]] = {}
    _find(model, "", found)
    if not found:
        raise ConversionError("the model has no KAN layers LUTHAM recognises (efficient-kan KANLinear, pykan KANLayer/MultKAN, FastKAN FastKANLayer)")
    if inplace:  # e.g. a loaded .pt2, whose graphs hold symbolic shapes that deepcopy refuses
        for name, old, new in found.values():
            if new is not old:
                takes_sizes = _graph_calls(old) is not None and sum(n.op == "placeholder" for n in old.graph.nodes) > 1
                replace_module(model, name, SizeArgsDropped(new) if takes_sizes else new)
        return model.eval()
    # Copy everything else; each recognised module is replaced by its conversion (never copied:
    # a fitted pykan model holds tensors that deepcopy refuses).
    memo = {key: new for key, (_, old, new) in found.items() if new is not old}
    return copy.deepcopy(model, memo=memo).eval()


def kan_layer_names(model: nn.Module) -> list[str]:
    """Names of the LUTHAM KAN layers of a (converted) model, in order."""
    return [n for n, m in model.named_modules() if isinstance(m, LuthamKANLayer)]
