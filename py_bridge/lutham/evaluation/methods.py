"""What the tables measure: accuracy (eager or through ExecuTorch), storage bytes of the KAN
layers, and the comparison methods (plain k-means, uniform quantization, magnitude pruning,
codebook fine-tuning)."""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..compress.quant import FLOAT_BITS, quantize_rows
from ..model.kan import KANLinear
from ..model.modules import replace_module
from ..compress.layer import SharedKANLinear
# Codebook fine-tuning lives once, in compress (export distills with it); eval's labelled variant
# is the same function with cross-entropy on the labels.
from ..compress.finetune import CodebookKANLinear, finetune_codebooks  # noqa: F401

EVAL_BATCH = 1000
PTE_BATCH = 500
FLOAT_BYTES = 4


# ---------------------------------------------------------------- accuracy


def standard_error(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on n images."""
    return math.sqrt(max(acc * (1 - acc), 0.0) / n) if n else float("nan")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = EVAL_BATCH) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / len(x)


def executorch_available() -> str | None:
    """None when lutham.pte files can run here, else why not."""
    try:
        from ..run import runtime

        runtime.load_backend()
        return None
    except Exception as e:  # BackendNotBuilt, or executorch missing
        return str(e).splitlines()[0]


def pte_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, workdir: str | Path | None = None,
                 batch: int = PTE_BATCH, name: str = "lutham.pte") -> tuple[float, dict]:
    """Exports the compressed model to lutham.pte (KAN layers delegated to LuthamBackend), runs
    the test images through ExecuTorch with the C++ backend, returns (accuracy, byte counts)."""
    from ..run import runtime
    from ..exporter.pipeline import to_executorch_bytes
    from ..files import write_atomic
    from ..measure import lutham_part_bytes

    batch = min(batch, len(x))
    x = torch.empty(x.shape, dtype=torch.float32).copy_(x)  # canonical strides (no 0 strides on size-1 axes)
    pte = to_executorch_bytes(model, x[:batch].contiguous(), delegate=True)
    parts = lutham_part_bytes(pte)
    with tempfile.TemporaryDirectory(prefix="lutham-eval-", dir=workdir) as tmp:
        path = Path(tmp) / name
        write_atomic(path, pte)
        # ExecuTorch's C++ logs (its cpuinfo probing at the first load, among others) go to a file,
        # not eval's stderr; a real failure names the first line of it.
        with runtime.capture_native_log() as log:
            try:
                program, method = runtime.load_method(path)
                correct = 0
                for i in range(0, len(x), batch):
                    xb = x[i : i + batch].contiguous()
                    n = len(xb)
                    if n < batch:  # the program has a fixed batch: pad the last one
                        xb = torch.cat([xb, xb.new_zeros((batch - n, *xb.shape[1:]))])
                    out = method.execute([xb])[0]
                    correct += int((out[:n].argmax(1) == y[i : i + n]).sum())
                del method, program
            except runtime.BackendNotBuilt:
                raise
            except Exception as e:
                detail = log.first_line()
                raise RuntimeError(f"running {name} through ExecuTorch: {e}" + (f" ({detail})" if detail else "")) from None
    parts["file_bytes"] = len(pte)
    parts["kan_bytes"] = parts["payload_bytes"] + parts["codebook_bytes"]
    return correct / len(x), parts


# ---------------------------------------------------------------- storage


def kan_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (KANLinear, SharedKANLinear, CodebookKANLinear))]


def edges(model: nn.Module) -> int:
    return sum(m.out_features * m.in_features for _, m in kan_layers(model))


def dense_bytes(model: nn.Module) -> int:
    """fp32 KAN tensors as the dense model stores them: grid, base_weight, spline_weight, spline_scaler."""
    from ..measure import kan_parameter_bytes

    return kan_parameter_bytes(model)


def _packed(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def _field_bytes(rows: int, count: int, bits: int) -> int:
    """A quantized field: packed values plus one float scale per row (float32: just the values)."""
    return count * FLOAT_BYTES if bits == FLOAT_BITS else _packed(count, bits) + rows * FLOAT_BYTES


def shared_bytes(model: nn.Module) -> int:
    """SHARe-KAN storage as LuthamBackend keeps it (schema v2): per layer one knot row, the edge
    panels (per edge a uint8/uint16 index and one 16/32-bit word of gain, bias and base, or three
    floats; outputs padded to panels of 16) with one scale per padded output and field; each
    distinct codebook (+ scales) once."""
    from ..lower.serialization.payload import PANEL_WIDTH, record_bytes

    total = 0
    seen: set[str] = set()
    for _, m in kan_layers(model):
        if not isinstance(m, SharedKANLinear):
            raise TypeError("shared_bytes takes a SHARe-KAN model")
        out_padded = -(-m.out_features // PANEL_WIDTH) * PANEL_WIDTH
        bits = (m.gain_bits, m.bias_bits, m.base_bits)
        floats = bits[0] == FLOAT_BITS
        total += m.knots.shape[1] * FLOAT_BYTES + out_padded // PANEL_WIDTH * m.in_features * record_bytes(m.index_bits, bits)
        total += 0 if floats else 3 * out_padded * FLOAT_BYTES
        key = hashlib.sha1(m.codebook.numpy().tobytes() + m.codebook_scales.numpy().tobytes()).hexdigest()
        if key not in seen:
            seen.add(key)
            k = m.codebook.shape[0]
            total += _field_bytes(k, m.codebook.numel(), m.codebook_bits)
    return total


# ---------------------------------------------------------------- codebook models (plain k-means)


def _dense_coeffs(m: KANLinear) -> np.ndarray:
    with torch.no_grad():
        return m.scaled_spline_weight().reshape(-1, m.coefficients_per_edge).numpy().astype(np.float32)


def kmeans(points: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, assignment) by faiss k-means (L2, seeded); exact when k >= the points."""
    import faiss

    if k >= len(points):
        return points.copy(), np.arange(len(points))
    km = faiss.Kmeans(points.shape[1], k, niter=20, seed=seed, max_points_per_centroid=256,
                      min_points_per_centroid=1, verbose=False)
    km.train(np.ascontiguousarray(points))
    _, idx = km.index.search(np.ascontiguousarray(points), 1)
    return km.centroids.astype(np.float32), idx[:, 0]


def plain_kmeans(model: nn.Module, k: int, seed: int = 0, codebook_bits: int = 8, base_bits: int = 5) -> tuple[nn.Module, int]:
    """MetaCluster without its meta-learner: k-means of the raw coefficient vectors c of each
    layer, int8 codebook (one scale per codeword), base weights at `base_bits`. (model, bytes)."""
    out = copy.deepcopy(model)
    total = 0
    for name, m in [(n, m) for n, m in out.named_modules() if isinstance(m, KANLinear)]:
        c = _dense_coeffs(m)
        cents, idx = kmeans(c, min(k, len(c)), seed)
        cb = quantize_rows(cents, codebook_bits)
        base = quantize_rows(m.base_weight.detach().numpy(), base_bits)
        layer = CodebookKANLinear(
            m.grid.detach().clone(), nn.Parameter(torch.from_numpy(cb.dequantize())),
            torch.from_numpy(idx.reshape(m.out_features, m.in_features)), torch.from_numpy(base.dequantize()),
            m.spline_order, base_bits=base_bits, codebook_bits=codebook_bits,
            basis_kind=m.basis_kind, rbf_denominator=m.rbf_denominator)
        n = len(c)
        total += m.grid.shape[1] * FLOAT_BYTES + _packed(n, layer.index_bits) + _field_bytes(m.out_features, n, base_bits)
        total += _field_bytes(len(cents), cents.size, codebook_bits)
        replace_module(out, name, layer)
    return out.eval(), total


def plain_kmeans_bytes(model: nn.Module, k: int, codebook_bits: int = 8, base_bits: int = 5) -> int:
    """Bytes plain_kmeans(model, k) would take, without clustering."""
    total = 0
    for _, m in [(n, m) for n, m in model.named_modules() if isinstance(m, KANLinear)]:
        n, d = m.out_features * m.in_features, m.coefficients_per_edge
        kk = min(k, n)
        total += m.grid.shape[1] * FLOAT_BYTES + _packed(n, max(1, math.ceil(math.log2(max(2, kk)))))
        total += _field_bytes(m.out_features, n, base_bits) + _field_bytes(kk, kk * d, codebook_bits)
    return total


def codebook_size_for_budget(model: nn.Module, budget: int, max_k: int = 65536) -> int:
    """The largest power-of-two K whose plain k-means storage fits in `budget` bytes (at least 2)."""
    k = 2
    while k * 2 <= max_k and plain_kmeans_bytes(model, k * 2) <= budget:
        k *= 2
    return k


def uniform_quantization(model: nn.Module, bits: int, base_bits: int = 5) -> tuple[nn.Module, int]:
    """KANtize-style: every coefficient at `bits` bits, one float scale per output row;
    base weights at `base_bits`. (model, bytes)."""
    out = copy.deepcopy(model)
    total = 0
    with torch.no_grad():
        for _, m in [(n, m) for n, m in out.named_modules() if isinstance(m, KANLinear)]:
            c = m.scaled_spline_weight().reshape(m.out_features, -1).numpy()
            q = quantize_rows(c, bits)
            base = quantize_rows(m.base_weight.numpy(), base_bits)
            m.spline_weight.copy_(torch.from_numpy(q.dequantize()).reshape_as(m.spline_weight))
            m.spline_scaler.fill_(1.0)
            m.base_weight.copy_(torch.from_numpy(base.dequantize()))
            n = m.out_features * m.in_features
            total += m.grid.shape[1] * FLOAT_BYTES + _field_bytes(m.out_features, c.size, bits)
            total += _field_bytes(m.out_features, n, base_bits)
    return out.eval(), total


def magnitude_prune(model: nn.Module, sparsity: float) -> tuple[nn.Module, int]:
    """Zero the `sparsity` fraction of whole edges with the smallest L2 norm of (c, base weight)
    in each layer, no fine-tuning. Bytes: the kept edges in fp32 plus a 1-bit edge mask."""
    out = copy.deepcopy(model)
    total = 0
    with torch.no_grad():
        for _, m in [(n, m) for n, m in out.named_modules() if isinstance(m, KANLinear)]:
            n = m.out_features * m.in_features
            d = m.coefficients_per_edge
            grid_bytes = m.grid.numel() * FLOAT_BYTES
            drop = int(round(sparsity * n))
            if drop == 0:
                total += grid_bytes + n * (d + 2) * FLOAT_BYTES
                continue
            mag = (m.scaled_spline_weight().pow(2).sum(-1) + m.base_weight.pow(2)).reshape(-1)
            pruned = torch.zeros(n, dtype=torch.bool)
            pruned[torch.argsort(mag)[:drop]] = True
            pruned = pruned.reshape(m.out_features, m.in_features)
            m.spline_weight[pruned] = 0.0
            m.base_weight[pruned] = 0.0
            total += grid_bytes + (n - drop) * (d + 2) * FLOAT_BYTES + _packed(n, 1)
    return out.eval(), total
