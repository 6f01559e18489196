"""Payload and codebook FlatBuffers (schema/lutham.fbs; generated code in lutham/payload/)."""

from .payload import (
    CODEBOOK_IDENTIFIER,
    PAYLOAD_IDENTIFIER,
    SCHEMA_VERSION,
    codebook_key,
    read_codebook,
    read_payload,
    write_codebook,
    write_payload,
)

__all__ = [
    "CODEBOOK_IDENTIFIER", "PAYLOAD_IDENTIFIER", "SCHEMA_VERSION", "codebook_key",
    "read_codebook", "read_payload", "write_codebook", "write_payload",
]
