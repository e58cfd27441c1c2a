"""raysweep: which calibration data should an LLM be pruned with, capability by capability."""

__version__ = "0.1.0"

__all__ = ["__version__"]
