"""The LuthamBackend payload and codebook FlatBuffers (payload.py; generated code in lutham/payload/)."""
