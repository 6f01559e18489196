from .partitioner import LuthamPartitioner, is_kan_linear

__all__ = ["LuthamPartitioner", "is_kan_linear"]
