"""The .ptd files `export --external-data` writes (ExecuTorch's flat_tensor format, magic FH01):
their named data, and the LUTHAM codebooks among it."""

from __future__ import annotations

import os

from ...compress.quant import Quantized
from .payload import CODEBOOK_KEY_PREFIX, codebook_key, read_codebook

# ExecuTorch's flat_tensor identifier, at bytes 4..8 of a .ptd file.
PTD_IDENTIFIER = b"FT01"


def named_data_of(data: bytes, what: str = ".ptd") -> dict[str, bytes]:
    """{key: bytes} of a .ptd file's contents; ValueError with one line naming the problem."""
    from executorch.exir._serialize._cord import Cord
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    if len(data) < 8 or data[4:8] != PTD_IDENTIFIER:
        raise ValueError(f"{what} is not a .ptd file (no {PTD_IDENTIFIER.decode()} identifier)")
    try:
        payload = FlatTensorSerializer().deserialize(Cord(data))
        return {key: bytes(payload.buffers[entry.buffer_index]) for key, entry in payload.named_data.items()}
    except Exception as e:  # a truncated or corrupted flatbuffer
        raise ValueError(f"{what} is not a readable .ptd file ({type(e).__name__}: {e})") from None


def read_named_data(path: str | os.PathLike) -> dict[str, bytes]:
    """{key: bytes} of the .ptd file at `path` (named_data_of)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    return named_data_of(data, str(path))


def read_codebooks(path: str | os.PathLike) -> dict[str, Quantized]:
    """The LUTHAM codebooks of a .ptd, {key: codebook as stored}, each checked against its
    content-hash key (so a corrupted codebook is refused, not reused)."""
    codebooks = {}
    for key, blob in read_named_data(path).items():
        if not key.startswith(CODEBOOK_KEY_PREFIX):
            continue
        if codebook_key(blob) != key:
            raise ValueError(f"{path}: codebook {key} does not match its SHA-256 (the file is corrupted)")
        try:
            codebooks[key] = read_codebook(blob)
        except Exception as e:
            raise ValueError(f"{path}: codebook {key} cannot be read ({e})") from None
    if not codebooks:
        raise ValueError(f"{path} holds no LUTHAM codebooks (was it written by lutham export --external-data?)")
    return codebooks
