"""lutham.convert: efficient-kan, pykan and FastKAN layers anywhere in a model become LUTHAM layers
with the same outputs (<= 1e-5), and what cannot be converted exactly is refused by name.

pykan is the real PyPI package (a test dependency); efficient-kan and FastKAN are written from
their published formulas in kan_formats.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lutham
from lutham.compress import CompressionConfig, compress_model
from lutham.model.convert import ConversionError, FastKANBlock, PykanNetwork
from lutham.model.kan import RBF, KANLinear

from kan_formats import ConvBNKAN, EfficientKAN, EfficientKANLinear, FastKAN, FastKANLayer

TOL = dict(rtol=1e-5, atol=1e-5)


def check_same(original: nn.Module, converted: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = original(x), converted(x)
    torch.testing.assert_close(got, want, **TOL)
    assert want.abs().max() > 1e-3  # the comparison is not between two near-zero outputs


def kan_layers(model):
    return [n for n, m in model.named_modules() if isinstance(m, KANLinear)]


# ---------------------------------------------------------------- efficient-kan


def test_reference_layers_have_the_published_keys_and_shapes():
    """The state dicts the conversion is tested on are those of efficient-kan's KAN and FastKAN."""
    eff = {k: tuple(v.shape) for k, v in EfficientKAN([4, 3], grid_size=5, spline_order=3).state_dict().items()}
    assert eff == {"layers.0.grid": (4, 12), "layers.0.base_weight": (3, 4), "layers.0.spline_weight": (3, 4, 8),
                   "layers.0.spline_scaler": (3, 4)}
    fast = {k: tuple(v.shape) for k, v in FastKAN([4, 3], num_grids=8).state_dict().items()}
    assert fast == {"layers.0.layernorm.weight": (4,), "layers.0.layernorm.bias": (4,), "layers.0.rbf.grid": (8,),
                    "layers.0.spline_linear.weight": (3, 32), "layers.0.base_linear.weight": (3, 4),
                    "layers.0.base_linear.bias": (3,)}


def test_efficient_kan_inside_a_conv_bn_model():
    torch.manual_seed(0)
    model = ConvBNKAN().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.backbone[1].running_mean.uniform_(-0.2, 0.2)
        model.backbone[1].running_var.uniform_(0.5, 2.0)
    converted = lutham.convert(model)
    assert kan_layers(converted) == ["head.layers.0", "head.layers.1"]
    assert isinstance(converted.backbone[1], nn.BatchNorm2d)  # everything else kept
    assert isinstance(model.head.layers[0], EfficientKANLinear)  # the input is untouched
    check_same(model, converted, torch.randn(6, 1, 28, 28))
    # The state dict keeps efficient-kan's keys, so its checkpoints still load.
    assert set(converted.state_dict()) == set(model.state_dict())


def test_efficient_kan_non_uniform_grid_range_and_outside_inputs():
    torch.manual_seed(1)
    layer = EfficientKANLinear(5, 3, grid_size=6, spline_order=2, grid_range=(-3, 2))
    with torch.no_grad():  # an updated grid: knots moved per input, still increasing
        layer.grid += torch.rand(layer.grid.shape).cumsum(-1) * 0.05
    x = torch.cat([torch.rand(64, 5) * 5 - 3, torch.rand(8, 5) * 20 - 10])  # inside and far outside
    converted = lutham.convert(layer)
    assert isinstance(converted, KANLinear) and converted.spline_order == 2 and converted.grid_size == 6
    check_same(layer, converted, x)


def test_efficient_kan_without_standalone_scaler():
    torch.manual_seed(2)
    model = EfficientKAN([4, 6, 2], enable_standalone_scale_spline=False).eval()
    converted = lutham.convert(model)
    torch.testing.assert_close(converted.layers[0].spline_scaler, torch.ones(6, 4))
    check_same(model, converted, torch.rand(32, 4) * 2 - 1)


def test_efficient_kan_other_base_activation_is_refused():
    model = nn.Sequential(nn.Linear(3, 3), EfficientKANLinear(3, 2, base_activation=nn.GELU))
    with pytest.raises(ConversionError, match=r"^1: base activation GELU is not SiLU"):
        lutham.convert(model)


def test_no_kan_layers_is_refused():
    with pytest.raises(ConversionError, match="no KAN layers"):
        lutham.convert(nn.Sequential(nn.Linear(3, 3)))


# ---------------------------------------------------------------- FastKAN


@pytest.mark.parametrize("layernorm", [True, False])
def test_fastkan(layernorm):
    torch.manual_seed(3)
    model = FastKAN([6, 5, 3], num_grids=7).eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.layernorm.weight.uniform_(0.5, 1.5)
            layer.layernorm.bias.uniform_(-0.3, 0.3)
            layer.base_linear.bias.uniform_(-0.5, 0.5)
            if not layernorm:
                layer.layernorm = None
    converted = lutham.convert(model)
    blocks = [m for m in converted.modules() if isinstance(m, FastKANBlock)]
    assert len(blocks) == 2
    for b in blocks:
        assert b.kan.basis_kind == RBF and b.kan.spline_order == 0 and b.kan.grid.shape == (b.kan.in_features, 7)
        assert b.kan.rbf_denominator == pytest.approx(4.0 / 6)
        # With a LayerNorm the base linear sees x before it, so it stays outside the KAN node.
        assert (b.base_linear is not None) == layernorm and (b.base_bias is None) == layernorm
    check_same(model, converted, torch.randn(40, 6) * 2)


def test_fastkan_without_base_update():
    torch.manual_seed(4)
    layer = FastKANLayer(4, 3, num_grids=5, use_base_update=False).eval()
    converted = lutham.convert(nn.Sequential(layer))
    assert converted[0].base_linear is None and converted[0].base_bias is None
    check_same(layer, converted[0], torch.randn(16, 4))


def test_fastkan_rbf_coefficients_compress_like_splines():
    """SHARe-KAN on the RBF coefficients: lossless when K >= edges (fp32), and the int8 model
    stays close; the compressed layer keeps the basis kind and denominator."""
    torch.manual_seed(5)
    model = FastKAN([8, 6, 3], num_grids=6).eval()
    converted = lutham.convert(model)
    x = torch.randn(32, 8)
    lossless, _ = compress_model(converted, CompressionConfig.fp32(codebook_size=48, scope="layer"))
    check_same(model, lossless, x)
    # int8 everything, K = edges: every shape its own codeword, only int8 rounding is left.
    int8, report = compress_model(converted, CompressionConfig(codebook_size=48, scope="layer", gain_bits=8, bias_bits=8, base_bits=8))
    assert all(l.coefficients_per_edge == 6 and l.exact for l in report.layers)
    shared = [m for m in int8.modules() if type(m).__name__ == "SharedKANLinear"]
    assert [m.basis_kind for m in shared] == [RBF, RBF] and shared[0].rbf_denominator == pytest.approx(4.0 / 5)
    with torch.no_grad():
        want, got = model(x), int8(x)
    assert float((got - want).norm() / want.norm()) < 0.02


# ---------------------------------------------------------------- pykan (real package)

kan = pytest.importorskip("kan")


def pykan_model(width, seed=0, **kw):
    return kan.MultKAN(width=width, grid=5, k=3, seed=seed, auto_save=False, save_act=True, **kw)


def fit_briefly(model, fn, n_in, seed=0, settle=True):
    """A few real pykan training steps, with its grid update from samples (non-uniform grids)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(200, n_in, generator=gen) * 2 - 1
    dataset = {"train_input": x, "train_label": fn(x), "test_input": x[:50], "test_label": fn(x[:50])}
    model.fit(dataset, opt="Adam", steps=6, lr=0.01, update_grid=True, grid_update_num=2, log=10**9)
    if settle:  # pykan keeps graph tensors of its last forward, which deepcopy refuses: one quiet forward clears them
        model.save_act = False
        with torch.no_grad():
            model(x[:1])
    return x


@pytest.fixture(scope="module")
def fitted_pykan():
    torch.manual_seed(0)
    model = pykan_model([3, 4, 2])
    fit_briefly(model, lambda x: torch.stack([torch.sin(3 * x[:, 0]) * x[:, 1], x[:, 2] ** 2], 1), 3)
    return model


def test_pykan_multkan_fitted(fitted_pykan):
    model = fitted_pykan
    grid = model.act_fun[0].grid
    assert not torch.allclose(grid[:, 1:] - grid[:, :-1], (grid[:, 1:] - grid[:, :-1])[:, :1].expand_as(grid[:, 1:])), \
        "the fit was meant to move the grid (update_grid)"
    converted = lutham.convert(model)
    assert isinstance(converted, PykanNetwork) and kan_layers(converted) == ["layers.0", "layers.1"]
    x = torch.rand(100, 3) * 2.4 - 1.2  # a little beyond the grid too
    check_same(model, converted, x)


def test_pykan_right_after_fit():
    """convert copies everything but the KAN layers, so pykan's leftover graph tensors do not matter."""
    model = pykan_model([2, 3, 1], seed=3)
    fit_briefly(model, lambda x: (x[:, :1] * x[:, 1:]), 2, seed=3, settle=False)
    check_same(model, lutham.convert(nn.Sequential(nn.Identity(), model)), torch.rand(40, 2) * 2 - 1)


def test_pykan_masks_affine_and_input_order(fitted_pykan):
    import copy

    model = copy.deepcopy(fitted_pykan)
    with torch.no_grad():
        model.act_fun[0].mask[1, 2] = 0.0  # a pruned edge: exact as a zero edge
        model.act_fun[1].mask[:, 0] = 0.0
        for l in range(2):
            model.node_scale[l].uniform_(0.5, 1.5)
            model.node_bias[l].uniform_(-0.5, 0.5)
            model.subnode_scale[l].uniform_(0.5, 1.5)
            model.subnode_bias[l].uniform_(-0.5, 0.5)
        model.input_id = torch.tensor([2, 0, 1])
    converted = lutham.convert(model)
    assert converted.input_id.tolist() == [2, 0, 1]
    assert float(converted.layers[0].base_weight[2, 1]) == 0.0 and float(converted.layers[0].spline_scaler[2, 1]) == 0.0
    check_same(model, converted, torch.rand(64, 3) * 2 - 1)
    # A masked edge stays exactly 0 after SHARe-KAN: zero gain, bias and base weight.
    compressed, _ = compress_model(converted, CompressionConfig(codebook_size=4, scope="layer"))
    layer = compressed.layers[0]
    assert (int(layer.gains[2, 1]), int(layer.biases[2, 1]), int(layer.base_weight[2, 1])) == (0, 0, 0)


def test_pykan_inside_a_bigger_model(fitted_pykan):
    model = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), fitted_pykan, nn.Softmax(-1))
    converted = lutham.convert(model)
    assert isinstance(converted[2], PykanNetwork) and isinstance(converted[0], nn.Linear)
    check_same(model, converted, torch.randn(20, 5))


def test_pykan_standalone_layer_keeps_its_tuple():
    torch.manual_seed(6)
    layer = kan.KANLayer(in_dim=4, out_dim=3, num=6, k=3)
    y_ref, pre_ref, _, _ = layer(torch.zeros(1, 4) + 0.1)
    converted = lutham.convert(layer)
    x = torch.rand(30, 4) * 2 - 1
    y, preacts, postacts, postspline = converted(x)
    with torch.no_grad():
        want, want_pre, _, _ = layer(x)
    torch.testing.assert_close(y, want, **TOL)
    torch.testing.assert_close(preacts, want_pre)
    assert postacts is None and postspline is None


def test_pykan_symbolic_branch_is_refused(fitted_pykan):
    import copy

    model = copy.deepcopy(fitted_pykan)
    model.fix_symbolic(1, 2, 0, "sin", fit_params_bool=False, verbose=False)
    with pytest.raises(ConversionError, match=r"symbolic_fun\.1: 1 edge\(s\) use pykan's symbolic branch \(e\.g\. input 2 -> output 0: 'sin'\)"):
        lutham.convert(model)


def test_pykan_multiplication_nodes_are_refused():
    model = pykan_model([2, [1, 1], 1])
    with pytest.raises(ConversionError, match=r"act_fun\.0: layer 0 feeds 1 multiplication node"):
        lutham.convert(nn.Sequential(model))


def test_pykan_compressed_output_lossless(fitted_pykan):
    converted = lutham.convert(fitted_pykan)
    lossless, _ = compress_model(converted, CompressionConfig.fp32(codebook_size=12, scope="layer"))
    check_same(fitted_pykan, lossless, torch.rand(50, 3) * 2 - 1)
