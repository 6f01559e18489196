"""Codebook fine-tuning (MetaCluster's last step), once for export and eval.

The codebooks of a compressed model (and, with tune_gains, its gains) are trained in float on
calibration inputs while indices, biases and base weights stay fixed; then they are stored again
as the encoder stores them: each codebook re-quantized (int8, one scale per codeword) and each
edge's gain re-fit by least squares against its stored codeword, then re-quantized.
One function, two losses: `lutham export` distills the dense model's outputs (no labels,
distill_codebooks), `lutham eval` trains on labels (cross-entropy).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model.kan import BSPLINE, kan_forward
from ..model.modules import replace_module
from .layer import SharedKANLinear, dequantize
from .quant import FLOAT_BITS, quantize_rows

# Intra-op threads while fine-tuning: one fixed count, so the float sums (and the written files)
# do not depend on how many cores the machine has or on OMP_NUM_THREADS.
FINETUNE_THREADS = 2
# Export's distillation: a few hundred calibration inputs need more passes than eval's 5,000
# labelled images (test/python/test_finetune.py: a tiny trained KAN, 300 inputs, 10 epochs halve the error).
DISTILL_EPOCHS = 20
DISTILL_LR = 1e-3
DISTILL_BATCH = 64

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[str, float], None]


class CodebookKANLinear(nn.Module):
    """A KAN layer whose coefficients come from a codebook: c = codebook[idx] (plain k-means), or
    c = bias + gain * codebook[idx] (SHARe-KAN, dequantized). The codebook is a Parameter that
    may be shared with other layers, so it can be fine-tuned."""

    def __init__(self, knots, codebook: nn.Parameter, indices, base_weight, spline_order, gains=None, biases=None,
                 index_bits=None, base_bits=FLOAT_BITS, codebook_bits=FLOAT_BITS, basis_kind=BSPLINE, rbf_denominator=0.0):
        super().__init__()
        self.codebook = codebook
        self.register_buffer("knots", knots)
        self.register_buffer("indices", indices.long())
        self.register_buffer("base_weight", base_weight)
        self.register_buffer("gains", gains)
        self.register_buffer("biases", biases)
        self.spline_order = spline_order
        self.basis_kind = basis_kind
        self.rbf_denominator = rbf_denominator
        self.index_bits = index_bits or max(1, math.ceil(math.log2(max(2, codebook.shape[0]))))
        self.base_bits = base_bits
        self.codebook_bits = codebook_bits

    @property
    def out_features(self) -> int:
        return self.indices.shape[0]

    @property
    def in_features(self) -> int:
        return self.indices.shape[1]

    def coefficients(self) -> torch.Tensor:
        c = self.codebook[self.indices]
        if self.gains is not None:
            c = self.gains.unsqueeze(-1) * c + self.biases.unsqueeze(-1)
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kan_forward(x, self.knots, self.spline_order, self.basis_kind, self.rbf_denominator,
                           base_weight=self.base_weight, coefficients=self.coefficients())


def relative_squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """||y - t||^2 / ||t||^2: the distillation loss, the square of the reported output error."""
    return (outputs - targets).pow(2).sum() / targets.pow(2).sum().clamp_min(1e-30)


@contextmanager
def deterministic_threads(threads: int = FINETUNE_THREADS):
    """Fixed intra-op threads and torch's deterministic algorithms, restored afterwards."""
    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_num_threads(threads_before)


def _codebook_key(m: SharedKANLinear) -> str:
    return hashlib.sha1(m.codebook.numpy().tobytes() + m.codebook_scales.numpy().tobytes()).hexdigest()


def finetune_codebooks(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, loss: Loss = F.cross_entropy,
                       epochs: int = 2, lr: float = 1e-3, batch: int = 128, seed: int = 0, tune_gains: bool = False,
                       progress: Progress | None = None) -> nn.Module:
    """A fine-tune of the codebooks (and with tune_gains the gains) of a SHARe-KAN model, or of a
    plain k-means model of CodebookKANLinear layers, on calibration inputs x: loss(model(x[i]),
    targets[i]) per seeded minibatch (Adam). targets: labels for cross-entropy (eval), the dense
    model's outputs for relative_squared_error (export). Returns a new model of the input's kind;
    a SHARe-KAN model keeps its storage (same bits, same bytes) and stays exportable."""
    work = copy.deepcopy(model)
    params: dict[str, nn.Parameter] = {}
    originals: dict[str, SharedKANLinear] = {}
    for name, m in [(n, m) for n, m in work.named_modules() if isinstance(m, SharedKANLinear)]:
        key = _codebook_key(m)  # layers that share a codebook share its Parameter
        if key not in params:
            params[key] = nn.Parameter(dequantize(m.codebook, m.codebook_scales, m.codebook_bits).clone())
        layer = CodebookKANLinear(
            m.knots.clone(), params[key], m.indices,
            dequantize(m.base_weight, m.base_scales, m.base_bits),
            m.spline_order, gains=dequantize(m.gains, m.gain_scales, m.gain_bits).clone(),
            biases=dequantize(m.biases, m.bias_scales, m.bias_bits),
            codebook_bits=m.codebook_bits, basis_kind=m.basis_kind, rbf_denominator=m.rbf_denominator)
        originals[name] = m
        replace_module(work, name, layer)
    layers = [(n, m) for n, m in work.named_modules() if isinstance(m, CodebookKANLinear)]
    if not layers:
        raise ValueError("codebook fine-tuning takes a compressed model (SHARe-KAN or plain k-means)")
    for p in work.parameters():
        p.requires_grad_(False)
    codebooks = {id(m.codebook): m.codebook for _, m in layers}
    trained = list(codebooks.values())
    gains: dict[str, nn.Parameter] = {}
    if tune_gains:
        for name, m in layers:
            if m.gains is not None:
                g = nn.Parameter(m.gains.clone())
                del m.gains  # the buffer becomes a trained Parameter of the same name
                m.gains = g
                gains[name] = g
        trained += list(gains.values())
    for p in trained:
        p.requires_grad_(True)
    work.eval()  # no dropout/batch-norm updates: only the codebooks (and gains) move
    with deterministic_threads():
        opt = torch.optim.Adam(trained, lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            if progress:
                progress(f"fine-tune codebooks: epoch {epoch + 1}/{epochs}", epoch / max(1, epochs))
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                value = loss(work(x[idx]), targets[idx])
                opt.zero_grad()
                value.backward()
                opt.step()
    if progress:
        progress("fine-tune codebooks: done", 1.0)
    with torch.no_grad():
        tuned = {key: p.detach().clone() for key, p in codebooks.items()}
        stored = {}
        for key, p in codebooks.items():
            bits = next(m.codebook_bits for _, m in layers if id(m.codebook) == key)
            stored[key] = quantize_rows(p.detach().numpy(), bits)
        for name, m in layers:
            q = stored[id(m.codebook)]
            if name not in originals:  # plain k-means: the codebook as stored, dequantized
                m.codebook.copy_(torch.from_numpy(q.dequantize()))
                m.codebook.requires_grad_(False)
                continue
            orig = originals[name]  # back to its SharedKANLinear (work's copy): new codebook and gains
            orig.codebook = torch.from_numpy(q.values.copy())
            orig.codebook_scales = torch.from_numpy(q.scales.copy())
            g = refit_gains(m.gains.detach(), tuned[id(m.codebook)], torch.from_numpy(q.dequantize()), m.indices)
            gq = quantize_rows(g.numpy(), orig.gain_bits)
            orig.gains = torch.from_numpy(gq.values.copy())
            orig.gain_scales = torch.from_numpy(gq.scales.copy())
            replace_module(work, name, orig)
    for p in work.parameters():
        p.requires_grad_(False)
    return work.eval()


def refit_gains(gains: torch.Tensor, tuned: torch.Tensor, stored: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The encoder's least-squares gain g' = <c - b, w> / ||w||^2 against the stored codeword w,
    for the tuned coefficients c = b + g * w_tuned: g' = g * <w_tuned, w> / ||w||^2 (0 for a zero w)."""
    energy = stored.pow(2).sum(-1)
    ratio = torch.where(energy > 0, (tuned * stored).sum(-1) / energy.clamp_min(1e-30), torch.zeros_like(energy))
    return (gains * ratio[indices.long()]).to(torch.float32)


def _outputs(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def distill_codebooks(dense: nn.Module, compressed: nn.Module, inputs: torch.Tensor, seed: int = 0,
                      epochs: int = DISTILL_EPOCHS, lr: float = DISTILL_LR, batch: int = DISTILL_BATCH,
                      tune_gains: bool = True, progress: Progress | None = None) -> tuple[nn.Module, dict]:
    """Fine-tunes `compressed` to match the dense model's outputs on `inputs` (no labels).
    Returns (model, facts): the relative output error on the inputs before and after; when
    fine-tuning did not lower it, the compressed model is returned unchanged (kept False)."""
    with deterministic_threads():
        targets = _outputs(dense, inputs, batch)
        before = _relative_error(_outputs(compressed, inputs, batch), targets)
    tuned = finetune_codebooks(compressed, inputs, targets, loss=relative_squared_error, epochs=epochs, lr=lr,
                               batch=batch, seed=seed, tune_gains=tune_gains, progress=progress)
    with deterministic_threads():
        after = _relative_error(_outputs(tuned, inputs, batch), targets)
    kept = after < before
    facts = dict(calibration_inputs=len(inputs), epochs=epochs, lr=lr, batch=batch, tune_gains=tune_gains,
                 loss="relative squared error to the dense model's outputs",
                 output_error_before=before, output_error_after=after, kept=kept)
    return (tuned if kept else compressed), facts


def _relative_error(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(outputs - targets) / torch.linalg.vector_norm(targets).clamp_min(1e-30))


def load_calibration(path: str | os.PathLike, input_shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    """The calibration inputs of a .npz: its one array (or the one named x), float, shaped
    (N, *input_shape). One-line ValueErrors name what is wrong; nothing pickled is loaded."""
    flag = "--calibration"
    want = tuple(int(d) for d in input_shape)
    want_text = "(N, " + ", ".join(map(str, want)) + ")"
    if not os.path.isfile(path):
        raise ValueError(f"{flag}: no such file {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{flag}: {path} is not a .npz file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{flag}: {path} is a single .npy array, not a .npz file; save it with numpy.savez(path, x=inputs)")
    with archive:
        names = list(archive.files)
        if not names:
            raise ValueError(f"{flag}: {path} holds no arrays; it needs one array of inputs shaped {want_text}")
        if len(names) > 1 and "x" not in names:
            raise ValueError(f"{flag}: {path} holds {len(names)} arrays ({', '.join(names)}); give one array of inputs, or name it x")
        name = names[0] if len(names) == 1 else "x"
        try:
            x = archive[name]
        except ValueError as e:  # object arrays need pickle, which is never used here
            raise ValueError(f"{flag}: array '{name}' in {path} cannot be read without pickle ({str(e).splitlines()[0]})") from None
        except Exception as e:
            raise ValueError(f"{flag}: array '{name}' in {path} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{flag}: array '{name}' is {x.dtype}; the inputs must be floating point, shaped {want_text}")
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise ValueError(f"{flag}: array '{name}' has shape {tuple(x.shape)}; the model takes {want_text}")
    if x.shape[0] == 0:
        raise ValueError(f"{flag}: array '{name}' holds no inputs (shape {tuple(x.shape)})")
    if not np.isfinite(x).all():
        raise ValueError(f"{flag}: array '{name}' holds NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
