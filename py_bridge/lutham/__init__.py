"""LUTHAM: SHARe-KAN compression and the LuthamBackend ExecuTorch delegate.

The package follows the pipeline:
  kan.py            the KAN layer (efficient-kan layout) and the B-spline basis
  models.py         backbones + KAN heads (the Dense model users start from)
  compress/         SHARe-KAN: gain-shape-bias vector quantization, int quantization
  ops.py            lutham::kan_linear, the one-node compressed KAN layer
  partition/        LuthamPartitioner: hands every lutham::kan_linear to LuthamBackend
  serialization/    payload and codebook FlatBuffers (generated code in payload/)
  backend.py        LuthamBackend.preprocess
  export.py         Dense and SHARe-KAN .pte files
  api.py            the entry points the TypeScript CLI calls
"""

__version__ = "0.1.0"
