"""The compression passes stream each codebook group in pieces: where the pieces end must not
change a bit of the compressed model or its report (the export's files are compared byte for
byte across versions)."""

import numpy as np
import pytest
import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.compress import gsb
from lutham.compress.edges import LayerEdges
from lutham.compress.gsb import RSquared, _spherical_kmeans, faiss_training_rows, gsb_encode, r_squared
from lutham.compress.quant import quantize_rows
from lutham.compress.reductions import PairwiseSum, SlotMeans
from lutham.model.kan import KANLinear
from lutham.model.multihead import build_model

from helpers import small_config


def _model(heads=5, widths=(64, 16, 4), repeated_shapes=False):
    model = build_model(small_config(heads=heads, widths=widths))
    if repeated_shapes:  # every edge one of 3 shapes (either sign) times a gain, plus a bias: exact GSB
        rng = np.random.default_rng(3)
        shapes = rng.normal(size=(3, 8))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, KANLinear):
                    pick = rng.integers(0, 3, size=(m.out_features, m.in_features))
                    gains = rng.choice([-1, 1], size=pick.shape) * rng.uniform(0.5, 2, size=pick.shape)
                    coeffs = gains[..., None] * shapes[pick] + rng.normal(size=pick.shape)[..., None]
                    m.spline_weight.copy_(torch.from_numpy(coeffs))
    return model.eval()


def _compress(model, config, chunk, leaf, monkeypatch):
    monkeypatch.setattr(gsb, "CHUNK_EDGES", chunk)
    monkeypatch.setattr(PairwiseSum, "LEAF", leaf)
    return compress_model(model, config)


CASES = {
    # K = 16 on 5,120 edges: k-means on faiss's subsample of 16 x 256 rows (layers.1: all 320 rows)
    "kmeans": (dict(), CompressionConfig(codebook_size=16)),
    # 3 distinct shapes per group: the distinct-shape scan gives the codebook and the assignment
    "exact": (dict(repeated_shapes=True), CompressionConfig(codebook_size=8, gain_bits=8)),
    # K = 4,096: two-level k-means and the two-probe assignment (layers.1: K >= edges)
    "two-level": (dict(), CompressionConfig(codebook_size=4096)),
    "fp32, scope layer": (dict(heads=2), CompressionConfig.fp32(codebook_size=32, scope="layer")),
}


@pytest.mark.parametrize("case", CASES)
def test_piece_size_changes_no_bit(case, monkeypatch):
    kw, config = CASES[case]
    model = _model(**kw)
    whole, whole_report = _compress(model, config, 1 << 30, 1 << 30, monkeypatch)
    for chunk, leaf in ((7, 128), (1000, 200)):
        parts, parts_report = _compress(model, config, chunk, leaf, monkeypatch)
        a, b = whole.state_dict(), parts.state_dict()
        assert list(a) == list(b)
        for name in a:
            assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), f"{case}: {name} differs with pieces of {chunk}"
        assert [vars(l) for l in whole_report.layers] == [vars(l) for l in parts_report.layers]
        layers = lambda m: [x for x in m.modules() if hasattr(x, "r2")]
        assert [x.r2 for x in layers(whole)] == [x.r2 for x in layers(parts)]
    if case == "exact":
        assert all(l.exact for l in whole_report.layers)
    if case == "two-level":
        assert whole_report.layers[0].codebook_size == 4096 and not whole_report.layers[0].exact


def test_streamed_model_matches_whole_matrix_numpy():
    """compress_model (layers read in pieces, rows finished as indices arrive) against the
    definition on the group's whole coefficient matrix: gsb_encode, quantize_rows per layer and
    numpy's R^2 sums over whole arrays, bit for bit."""
    model = _model()
    config = CompressionConfig(codebook_size=16)
    compressed, report = compress_model(model, config)
    groups = {"layers.0": [], "layers.1": []}
    for name, m in model.named_modules():
        if isinstance(m, KANLinear):
            groups[name.split(".", 2)[2]].append((name, m))
    for entry, (group, members) in zip(report.layers, groups.items()):
        with torch.no_grad():
            coeffs = np.concatenate([m.scaled_spline_weight().reshape(-1, m.coefficients_per_edge).numpy() for _, m in members])
        code = gsb_encode(coeffs, config.codebook_size, config.seed, config.codebook_bits)
        stored = code.codebook.dequantize()
        group_r2 = RSquared(coeffs.mean(axis=0))
        start = 0
        for name, m in members:
            n = m.out_features * m.in_features
            sl = slice(start, start + n)
            start += n
            layer = compressed.get_submodule(name)
            gains = quantize_rows(code.gains[sl].reshape(m.out_features, -1), config.gain_bits)
            biases = quantize_rows(code.biases[sl].reshape(m.out_features, -1), config.bias_bits)
            assert np.array_equal(layer.indices.numpy(), code.indices[sl].reshape(m.out_features, -1))
            assert np.array_equal(layer.gains.numpy(), gains.values) and np.array_equal(layer.gain_scales.numpy(), gains.scales)
            assert np.array_equal(layer.biases.numpy(), biases.values) and np.array_equal(layer.bias_scales.numpy(), biases.scales)
            assert np.array_equal(layer.codebook.numpy(), code.codebook.values)
            approx = biases.dequantize().reshape(-1, 1) + gains.dequantize().reshape(-1, 1) * stored[code.indices[sl]]
            group_r2.add(coeffs[sl], approx)
            assert layer.r2 == r_squared(coeffs[sl], approx)
        assert entry.name == group and entry.r2 == group_r2.value()


def test_layer_edges_are_the_layers_coefficients():
    model = _model(heads=3)
    members = [m for m in model.modules() if isinstance(m, KANLinear)][::2]  # the three layers.0
    edges = LayerEdges(members)
    with torch.no_grad():
        whole = np.concatenate([m.scaled_spline_weight().reshape(-1, m.coefficients_per_edge).numpy() for m in members])
    assert edges.n == len(whole)
    for a, b in ((0, edges.n), (5, 1029), (1020, 1030), (1000, 2100), (edges.n - 3, edges.n)):
        assert np.array_equal(edges.rows(a, b), whole[a:b])
    pick = np.random.default_rng(0).permutation(edges.n)[:500]
    assert np.array_equal(edges.gather(pick), whole[pick])


def test_faiss_training_rows_are_faiss_own_subsample():
    import faiss

    n = 50_000
    perm = np.empty(n, np.int32)
    faiss.rand_perm(faiss.swig_ptr(perm), n, 5)
    assert np.array_equal(faiss_training_rows(n, 16, 5), perm[: 16 * 256])
    assert faiss_training_rows(16 * 256, 16, 5) is None
    # k-means on those rows alone gives the centroids of k-means given every row.
    rng = np.random.default_rng(0)
    shapes = rng.normal(size=(n, 12)).astype(np.float32)
    shapes /= np.linalg.norm(shapes, axis=1, keepdims=True)
    assert np.array_equal(_spherical_kmeans(shapes[faiss_training_rows(n, 16, 5)], 16, 5), _spherical_kmeans(shapes, 16, 5))


@pytest.mark.parametrize("total", [0, 5, 127, 128, 129, 1000, 40_000, 300_001])
def test_pairwise_sum_is_numpys_sum(total, monkeypatch):
    rng = np.random.default_rng(total)
    values = (rng.normal(size=total) * rng.uniform(0, 1e4, size=total)) ** 2
    for leaf in (128, 1000, PairwiseSum.LEAF):
        monkeypatch.setattr(PairwiseSum, "LEAF", leaf)
        acc = PairwiseSum(total)
        pos = 0
        while pos < total:
            step = int(rng.integers(1, 5000))
            acc.add(values[pos : pos + step])
            pos += step
        assert acc.value() == float(np.sum(values))
    matrix = values[: total - total % 12].reshape(-1, 12)  # r_squared sums (edges, d) arrays
    acc = PairwiseSum(matrix.size)
    for a in range(0, len(matrix), 777):
        acc.add(matrix[a : a + 777])
    assert acc.value() == float(matrix.sum())


def test_pairwise_sum_refuses_a_short_stream():
    acc = PairwiseSum(300)
    acc.add(np.ones(200))
    with pytest.raises(RuntimeError, match="200 of 300"):
        acc.value()


def test_slot_means_are_numpys_mean():
    rng = np.random.default_rng(1)
    rows = (rng.normal(size=(100_003, 12)) * rng.uniform(0.01, 100, size=(100_003, 1))).astype(np.float32)
    for step in (1, 7, 4096, 100_003):
        means = SlotMeans()
        for a in range(0, len(rows) if step > 1 else 3000, step):
            means.add(rows[a : a + step])
        expect = rows.mean(axis=0) if step > 1 else rows[:3000].mean(axis=0)
        assert means.value().dtype == np.float32 and np.array_equal(means.value(), expect)
