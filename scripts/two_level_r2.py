"""R^2 cost of the two-level assignment (compress/two_level_check.py) on the seeded model that
`lutham export --backbone none --heads N` builds: its first layer position (N heads' layers.0,
one codebook, as export's default scope "heads" groups them).

  PYTHONPATH=py_bridge .venv/bin/python scripts/two_level_r2.py --heads 50 --codebook-size 65536 --sample 200000 --probes 1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=50)
    parser.add_argument("--codebook-size", type=int, default=65536)
    parser.add_argument("--sample", type=int, default=200_000, help="edges assigned both ways")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probes", default="1,2,3,4", help="coarse cells searched per edge, comma-separated")
    args = parser.parse_args(argv)

    from lutham.compress.two_level_check import two_level_cost
    from lutham.model.multihead import ModelConfig, build_model

    started = time.monotonic()
    model = build_model(ModelConfig(backbone="none", heads=args.heads, seed=args.seed))
    with torch.no_grad():
        coeffs = np.concatenate([head.layers[0].scaled_spline_weight().reshape(-1, head.layers[0].coefficients_per_edge).numpy()
                                 for head in model.heads])
    del model
    result = two_level_cost(coeffs, args.codebook_size, args.seed, args.sample,
                            probes=tuple(int(p) for p in args.probes.split(",")),
                            progress=lambda what, frac: print(f"{what} ({frac:.0%})", file=sys.stderr, flush=True))
    result.update(heads=args.heads, seed=args.seed, seconds=round(time.monotonic() - started, 1))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
