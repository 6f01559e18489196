"""Train the pure KAN (784 -> 64 -> 10, grid 8, order 3) on Fashion-MNIST and measure the
accuracy of SHARe-KAN at several bit allocations, to choose LUTHAM's defaults.

    PYTHONPATH=py_bridge .venv/bin/python examples/fashion_mnist/sweep_bits.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lutham.compress import CompressionConfig, compress_model
from lutham.datasets import load_fashion_mnist, pixels_in_grid_range
from lutham.kan import KAN

CACHE = Path.home() / ".cache" / "lutham"


def train_pure_kan(epochs: int, seed: int = 0) -> KAN:
    path = CACHE / f"fashion_pure_kan_e{epochs}_s{seed}.pt"
    torch.manual_seed(seed)
    model = KAN([784, 64, 10], grid_size=8, spline_order=3)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    x, y = load_fashion_mnist("train")
    x = torch.from_numpy(pixels_in_grid_range(x))
    y = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        t = time.time()
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.3f} ({time.time() - t:.0f} s)", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--configs", default="256/8/8/8,256/6/6/6,256/6/4/6,256/6/4/4,256/5/4/4,256/4/4/4,256/6/3/4,256/4/3/3,256/8/8/4,256/8/4/8",
                    help="comma-separated K/gain_bits/bias_bits/base_bits")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = train_pure_kan(args.epochs)
    xt, yt = load_fashion_mnist("test")
    xt = torch.from_numpy(pixels_in_grid_range(xt))
    yt = torch.from_numpy(yt.astype(np.int64))
    dense_acc = accuracy(model, xt, yt)
    print(json.dumps({"config": "dense", "acc": dense_acc}), flush=True)
    grid = [(int(k), int(g), int(b), int(w)) for k, g, b, w in (c.split("/") for c in args.configs.split(","))]
    for k, gain, bias, base in grid:
        if True:
            cfg = CompressionConfig(codebook_size=k, gain_bits=gain, bias_bits=bias, base_bits=base)
            c, rep = compress_model(model, cfg)
            bits = int(np.ceil(np.log2(k))) + gain + bias + base
            print(json.dumps({"K": k, "gain": gain, "bias": bias, "base": base, "bits_per_edge": bits,
                              "acc": accuracy(c, xt, yt), "r2": [round(l.r2, 4) for l in rep.layers]}), flush=True)


if __name__ == "__main__":
    main()
