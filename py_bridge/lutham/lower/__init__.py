"""Lowering: the partitioner, LuthamBackend.preprocess, the payload format, the partitioner choices."""
