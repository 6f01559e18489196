"""Real-data evaluation: trained Fashion-MNIST KANs, the seed papers' tables, baselines.

    data.py     datasets (Fashion-MNIST from Debian, or the user's .npz / image folder)
    train.py    the pure KAN and the Vision KAN, seeded training, checkpoint cache
    methods.py  storage bytes, accuracy, plain k-means, uniform quantization, pruning, codebook fine-tune
    tables.py   evaluate(): Table 1, VQ saturation, pruning cliff, baselines at equal bytes
"""

from .tables import evaluate, report_data

__all__ = ["evaluate", "report_data"]
