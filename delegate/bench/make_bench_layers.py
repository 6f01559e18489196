"""Layers for lutham_kernel_bench (delegate/bench/lutham_kernel_bench.cpp): the two layers of
`lutham bench`'s default head (2048 -> 512 -> 25, grid 9, order 3, K = 128, the default
6/4/5-bit gains, biases and base weights), seeded random edges and codewords: the kernel's
cost depends only on the shapes and storage, not on the values. Per layer N: N.payload,
N.codebook (the Python writer's bytes); layers.txt lists them in order.

    PYTHONPATH=py_bridge python delegate/bench/make_bench_layers.py OUT_DIR [WIDTHS [COMPUTE]]   (e.g. 2048,512,25 int8)

COMPUTE is float (default) or int8 (the payloads' compute mode, lutham export --compute).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lutham.compress.quant import Quantized
from lutham.lower.serialization.payload import COMPUTE_FLOAT, COMPUTE_INT8, LayerData, codebook_key, write_codebook, write_payload
from lutham.model.kan import BSPLINE, uniform_knots


def main(out_dir: str, widths: str = "2048,512,25", compute: str = "float") -> int:
    modes = {"float": COMPUTE_FLOAT, "int8": COMPUTE_INT8}
    if compute not in modes:
        print(f"make_bench_layers: COMPUTE must be float or int8, got {compute}", file=sys.stderr)
        return 2
    dims = [int(w) for w in widths.split(",")]
    G, k, K = 9, 3, 128
    rng = np.random.default_rng(0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words = Quantized(rng.integers(-127, 128, size=(K, G + k)).astype(np.int8),
                      rng.uniform(0.001, 0.02, size=K).astype(np.float32), 8)
    names = []
    for n, (inn, o) in enumerate(zip(dims, dims[1:])):
        def field(b: int) -> Quantized:
            q = (1 << (b - 1)) - 1
            return Quantized(rng.integers(-q, q + 1, size=(o, inn)).astype(np.int8),
                             rng.uniform(0.01, 0.1, size=o).astype(np.float32), b)
        layer = LayerData(in_features=inn, out_features=o, grid_size=G, spline_order=k,
                          knots=uniform_knots(inn, G, k).numpy().astype(np.float32),
                          codebook_key=codebook_key(write_codebook(words)), codebook_size=K, codebook_dim=G + k,
                          index_bits=7, indices=rng.integers(0, K, size=(o, inn)), gains=field(6), biases=field(4),
                          base_weight=field(5), basis_kind=BSPLINE, rbf_denominator=0.0, compute=modes[compute])
        name = f"layer{n}"
        (out / f"{name}.payload").write_bytes(write_payload(layer))
        (out / f"{name}.codebook").write_bytes(write_codebook(words))
        names.append(name)
    (out / "layers.txt").write_text("\n".join(names) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
