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
  convert.py, load.py   other libraries' KAN layers (efficient-kan, pykan, FastKAN) and user models

    import lutham
    m = lutham.convert(model)                        # KAN layers -> LUTHAM layers, same outputs
    lutham.export(m, example_input, "out", codebook_size=128)   # dense.pte, lutham.pte, report.json
"""

__version__ = "0.1.0"

import logging

# Importing executorch makes torch log a deprecation warning (torchao registers an Enum as a
# pytree constant) on stderr; the CLI's stderr is for its own one-line messages and progress.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

# Imported here, after which the submodules `lutham.convert` and `lutham.export` are loaded and
# these names stay the functions (a submodule only sets its parent's attribute on first load).
# api first: it loads compress/ before ops.py, the order their mutual imports need.
from .api import export_model as export  # noqa: E402
from .convert import ConversionError, convert  # noqa: E402

__all__ = ["ConversionError", "convert", "export"]
