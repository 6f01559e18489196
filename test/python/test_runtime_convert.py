"""Converted efficient-kan, pykan and FastKAN models through lutham.pte and the C++ LuthamBackend:
the runtime matches the compressed model in PyTorch eager (rel L2 < 1e-5, the bound of
test_runtime.py), and when compression is lossless (fp32, K >= edges) the original model (< 1e-4).

Needs build/delegate (scripts/build-delegate.sh). test_runtime_parity[fastkan] needs the C++
backend to evaluate the Gaussian RBF basis (payload basis kind 1).
"""

from __future__ import annotations

import pytest
import torch

import lutham
from lutham.run import runtime
from lutham.compress import CompressionConfig, compress_model
from lutham.exporter.pipeline import to_executorch_bytes
from lutham.files import write_atomic

from kan_formats import ConvBNKAN, FastKAN

pytestmark = pytest.mark.skipif(
    not runtime.library_path().is_file(),
    reason=f"{runtime.library_path()} not built: run scripts/build-delegate.sh",
)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def efficient_kan():
    torch.manual_seed(0)
    model = ConvBNKAN(hidden=12).eval()
    with torch.no_grad():
        model.backbone[1].running_var.uniform_(0.5, 2.0)
    return model, lambda g: torch.randn(4, 1, 28, 28, generator=g)


def pykan():
    kan = pytest.importorskip("kan")
    model = kan.MultKAN(width=[5, 6, 3], grid=5, k=3, seed=0, auto_save=False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 5, generator=g) * 2 - 1
    y = torch.stack([x[:, 0] * x[:, 1], torch.sin(2 * x[:, 2]), x[:, 3] - x[:, 4] ** 2], 1)
    model.fit({"train_input": x, "train_label": y, "test_input": x[:20], "test_label": y[:20]},
              opt="Adam", steps=5, lr=0.01, update_grid=True, grid_update_num=2, log=10**9)
    with torch.no_grad():
        model.node_bias[0].uniform_(-0.3, 0.3)
        model.subnode_scale[1].uniform_(0.5, 1.5)
    return model.eval(), lambda g: torch.rand(4, 5, generator=g) * 2.2 - 1.1


def fastkan():
    torch.manual_seed(0)
    model = FastKAN([10, 8, 4], num_grids=6).eval()
    return model, lambda g: torch.randn(4, 10, generator=g)


FORMATS = {"efficient_kan": efficient_kan, "pykan": pykan, "fastkan": fastkan}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_runtime_parity(fmt, tmp_path):
    original, inputs = FORMATS[fmt]()
    converted = lutham.convert(original)
    g = torch.Generator().manual_seed(1)
    example = inputs(g)
    for name, cfg, reference, bound in [
        ("int", CompressionConfig(codebook_size=16, scope="layer"), "compressed", 1e-5),
        ("lossless", CompressionConfig.fp32(codebook_size=65536, scope="layer"), "original", 1e-4),
    ]:
        compressed, _ = compress_model(converted, cfg)
        path = tmp_path / f"{fmt}.{name}.lutham.pte"
        write_atomic(path, to_executorch_bytes(compressed, example, delegate=True))
        for seed in range(2):
            x = inputs(torch.Generator().manual_seed(10 + seed))
            got = runtime.run_program(path, [x])[0]
            with torch.no_grad():
                want = (compressed if reference == "compressed" else original)(x)
            assert got.shape == want.shape
            assert rel_l2(got, want) < bound, (name, rel_l2(got, want))
