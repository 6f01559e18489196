"""Running .pte files in this process with LuthamBackend registered, and its counters."""
