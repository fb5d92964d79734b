"""Todo API backend."""

__version__ = "0.1.0"
