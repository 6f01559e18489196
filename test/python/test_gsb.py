import numpy as np
import torch

from lutham.compress import CompressionConfig, compress_model, relative_output_error
from lutham.compress.gsb import canonical_sign, gsb_encode, r_squared, reconstruct, split_gain_shape_bias
from lutham.model.kan import KANLinear

from helpers import small_config, small_pair


def test_split_is_bias_gain_shape():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(50, 8)).astype(np.float32)
    b, r, s = split_gain_shape_bias(c)
    np.testing.assert_allclose(b, c.mean(1), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(b[:, None] + np.linalg.norm(r, axis=1)[:, None] * s, c, atol=1e-5)


def test_gsb_is_exact_when_codebook_holds_every_distinct_shape():
    rng = np.random.default_rng(1)
    shapes = rng.normal(size=(5, 12)).astype(np.float32)
    # 400 edges built from 5 distinct shapes with random gains (either sign) and biases.
    pick = rng.integers(0, 5, size=400)
    gains = rng.choice([-1, 1], size=(400, 1)) * rng.uniform(0.5, 2, size=(400, 1))
    coeffs = (gains * shapes[pick] + rng.normal(size=(400, 1))).astype(np.float32)
    code = gsb_encode(coeffs, codebook_size=8, seed=0, codebook_bits=32)
    assert code.exact and len(code.codebook.values) <= 5
    np.testing.assert_allclose(reconstruct(code), coeffs, atol=1e-5)
    assert r_squared(coeffs, reconstruct(code)) > 1 - 1e-10


def test_gsb_with_kmeans_gains_are_least_squares():
    rng = np.random.default_rng(2)
    coeffs = rng.normal(size=(3000, 8)).astype(np.float32)
    code = gsb_encode(coeffs, codebook_size=32, seed=0, codebook_bits=32)
    assert not code.exact and len(code.codebook.values) == 32
    w = code.codebook.dequantize()[code.indices]
    residual = coeffs - code.biases[:, None]
    # g minimizes ||r - g w||: the remaining error is orthogonal to w.
    err = residual - code.gains[:, None] * w
    assert np.abs(np.einsum("nd,nd->n", err, w)).max() < 1e-4
    # The chosen codeword is the one of largest |cosine|.
    unit = code.codebook.dequantize()
    _, _, s = split_gain_shape_bias(coeffs)
    best = np.abs(s @ unit.T).max(1)
    chosen = np.abs(np.einsum("nd,nd->n", s, w))
    np.testing.assert_allclose(chosen, best, atol=1e-5)


def test_canonical_sign_merges_opposite_shapes():
    s = np.array([[0.6, -0.8], [-0.6, 0.8]], np.float32)
    c = canonical_sign(s)
    assert np.array_equal(c[0], c[1])


def test_compressed_model_with_k_at_least_edges_matches_dense_fp32():
    config, dense, compressed, report = small_pair(compression=CompressionConfig.fp32(codebook_size=65536))
    assert all(l.exact and l.r2 > 1 - 1e-9 for l in report.layers)
    assert report.warnings and "clamped" in report.warnings[0]
    assert relative_output_error(dense, compressed, config.example_input()) < 1e-5


def test_int8_model_error_is_small_and_reported():
    config, dense, compressed, report = small_pair(compression=CompressionConfig(codebook_size=64, gain_bits=8, bias_bits=8, base_bits=8))
    assert [l.name for l in report.layers] == ["layers.0", "layers.1"]
    assert all(0.5 < l.r2 <= 1 for l in report.layers)
    assert relative_output_error(dense, compressed, config.example_input()) < 0.05


def test_scope_heads_shares_one_codebook_per_layer_position():
    _, _, compressed, report = small_pair(compression=CompressionConfig(codebook_size=16, scope="heads"))
    cbs = [h.layers[0].codebook for h in compressed.heads]
    assert all(torch.equal(cbs[0], c) for c in cbs) and len(report.layers) == 2
    _, _, compressed, report = small_pair(compression=CompressionConfig(codebook_size=16, scope="layer"))
    assert len(report.layers) == 6


def test_compression_is_deterministic():
    _, _, a, _ = small_pair()
    _, _, b, _ = small_pair()
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb)


def test_kan_linear_matches_efficient_kan_definition():
    torch.manual_seed(0)
    layer = KANLinear(6, 3, grid_size=4, spline_order=3)
    x = torch.rand(5, 6) * 2.4 - 1.2
    # Edge by edge: base * silu(x) + scaler * sum_m w_m B_m(x).
    from lutham.model.kan import b_splines

    basis = b_splines(x, layer.grid, 3)
    expect = torch.zeros(5, 3)
    for o in range(3):
        for i in range(6):
            expect[:, o] += layer.base_weight[o, i] * torch.nn.functional.silu(x[:, i])
            expect[:, o] += layer.spline_scaler[o, i] * (basis[:, i, :] @ layer.spline_weight[o, i])
    torch.testing.assert_close(layer(x), expect, rtol=1e-5, atol=1e-6)
    # Inside the grid range the bases are a partition of unity.
    inside = torch.rand(7, 6) * 1.98 - 0.99
    torch.testing.assert_close(b_splines(inside, layer.grid, 3).sum(-1), torch.ones(7, 6))


def _random_layer(edges: int, seed: int = 3) -> np.ndarray:
    """Coefficient vectors of `edges` edges with more distinct shapes than any codebook here."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((edges, 8)) * rng.uniform(0.1, 2, (edges, 1)) + rng.normal(0, 0.3, (edges, 1))).astype(np.float32)


def test_two_level_assignment_is_the_best_codeword_of_the_probed_cells():
    from lutham.compress.gsb import TWO_LEVEL_MIN_CODEBOOK, TwoLevelSearch, _unit_rows, canonical_shapes, train_two_level

    coeffs = _random_layer(12_000)
    shapes = canonical_shapes(coeffs)
    two_level = train_two_level(shapes, TWO_LEVEL_MIN_CODEBOOK, seed=0)  # 12,000 shapes: all of them train
    assert two_level.words.shape == (TWO_LEVEL_MIN_CODEBOOK, 8) and two_level.bounds[-1] == TWO_LEVEL_MIN_CODEBOOK
    unit = _unit_rows(two_level.words)
    sample = shapes[:500]
    for probes in (1, 2):
        found = TwoLevelSearch(two_level.words, two_level, probes).search(sample)
        # Brute force: the `probes` coarse cells of largest cosine, then the best +w codeword in them.
        cells = np.argsort(-(sample @ two_level.coarse.T), axis=1, kind="stable")[:, :probes]
        for e in range(len(sample)):
            candidates = np.concatenate([np.arange(two_level.bounds[c], two_level.bounds[c + 1]) for c in cells[e]])
            scores = unit[candidates] @ sample[e]
            assert np.isclose(unit[found[e]] @ sample[e], scores.max(), atol=1e-5), (probes, e)
            assert found[e] in candidates


def test_gsb_encode_above_the_two_level_threshold_is_seeded_and_costs_little_r2():
    from lutham.compress.gsb import TWO_LEVEL_MIN_CODEBOOK
    from lutham.compress.two_level_check import two_level_cost

    coeffs = _random_layer(12_000)
    a = gsb_encode(coeffs, TWO_LEVEL_MIN_CODEBOOK, seed=5)
    b = gsb_encode(coeffs, TWO_LEVEL_MIN_CODEBOOK, seed=5)
    assert not a.exact and len(a.codebook.values) == TWO_LEVEL_MIN_CODEBOOK
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.codebook.values, b.codebook.values)
    cost = two_level_cost(coeffs, TWO_LEVEL_MIN_CODEBOOK, seed=5, sample_edges=4000, probes=(1, 2, 4))
    costs = [p["r2_cost"] for p in cost["probes"]]
    # Exact assignment is the per-edge optimum, and more probed cells only add candidates.
    assert all(c >= -1e-9 for c in costs) and costs[0] >= costs[1] >= costs[2] - 1e-9, costs
    assert costs[1] < 0.05 and cost["probes"][1]["same_codeword"] > 0.5, cost
