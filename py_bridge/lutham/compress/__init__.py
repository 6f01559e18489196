"""SHARe-KAN compression: gain-shape-bias VQ (gsb), int quantization (quant), whole models (model)."""

from .model import CompressionConfig, CompressionReport, compress_model, relative_output_error

__all__ = ["CompressionConfig", "CompressionReport", "compress_model", "relative_output_error"]
