"""Train the pure KAN (784 -> 64 -> 10, grid 8, order 3) on Fashion-MNIST and measure the
accuracy of SHARe-KAN at several bit allocations, to choose LUTHAM's defaults.

    PYTHONPATH=py_bridge .venv/bin/python examples/fashion_mnist/sweep_bits.py [--epochs 4]

Training and the checkpoint cache (~/.cache/lutham or LUTHAM_CACHE) are lutham.evaluation's,
the same model `lutham eval` reports on.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.evaluation.data import load_data
from lutham.evaluation.methods import accuracy
from lutham.evaluation.train import train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--configs", default="256/8/8/8,256/6/6/6,256/6/4/6,256/6/4/4,256/5/4/4,256/4/4/4,256/6/3/4,256/4/3/3,256/8/8/4,256/8/4/8",
                    help="comma-separated K/gain_bits/bias_bits/base_bits")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = load_data("fashion-mnist")
    model, _ = train("pure_kan", data, epochs=args.epochs, progress=lambda s, f: print(f"{s} {f:.0%}", flush=True) if round(f * 100) % 10 == 0 else None)
    xt, yt = data.x_test, data.y_test
    print(json.dumps({"config": "dense", "acc": accuracy(model, xt, yt)}), flush=True)
    grid = [(int(k), int(g), int(b), int(w)) for k, g, b, w in (c.split("/") for c in args.configs.split(","))]
    for k, gain, bias, base in grid:
        cfg = CompressionConfig(codebook_size=k, gain_bits=gain, bias_bits=bias, base_bits=base)
        c, rep = compress_model(model, cfg)
        bits = int(np.ceil(np.log2(k))) + gain + bias + base
        print(json.dumps({"K": k, "gain": gain, "bias": bias, "base": base, "bits_per_edge": bits,
                          "acc": accuracy(c, xt, yt), "r2": [round(l.r2, 4) for l in rep.layers]}), flush=True)


if __name__ == "__main__":
    main()
