"""LUTHAM: SHARe-KAN compression and the LuthamBackend ExecuTorch delegate.

The package follows the pipeline; each folder imports only from the ones below it
(.importlinter states the order and test_architecture.py checks it):
  model/      the KAN layer and its one forward (kan.py), multi-head models, other libraries'
              KAN layers (convert.py) and the user's model files (load.py)
  compress/   SHARe-KAN: gain-shape-bias VQ, int quantization, lutham::kan_linear (layer.py)
  lower/      the partitioner, LuthamBackend.preprocess, the payload format (serialization/),
              which partitioner takes what (lowering.py)
  measure.py  byte counts of a model's KAN tensors and of .pte parts
  run/        running .pte files with LuthamBackend loaded
  exporter/   the export pipeline, the output set it writes, the int8 XNNPACK baseline
  evaluation/, bench/   real-data tables, the side-by-side benchmark
  api.py      the entry points the TypeScript CLI calls (through bridge/)
  files.py    the atomic file writer

    import lutham
    m = lutham.convert(model)                        # KAN layers -> LUTHAM layers, same outputs
    lutham.export(m, example_input, "out", codebook_size=128)   # dense.pte, lutham.pte, report.json
"""

__version__ = "0.1.0"

import logging

# Importing executorch makes torch log a deprecation warning (torchao registers an Enum as a
# pytree constant) on stderr; the CLI's stderr is for its own one-line messages and progress.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

# `lutham.export` and `lutham.convert` load torch and executorch on first use, not on `import
# lutham`: a process that needs only a light module (the bridge's lifeline, the output sets)
# starts in milliseconds instead of seconds.
_LAZY = {"export": ("exporter.pipeline", "export_model"), "convert": ("model.convert", "convert"),
         "ConversionError": ("model.convert", "ConversionError")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'lutham' has no attribute '{name}'")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


__all__ = ["ConversionError", "convert", "export"]
