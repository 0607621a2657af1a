"""pystream: Spark Streaming, rebuilt for Python."""

from pystream._core.hashing import portable_hash
from pystream.errors import PyStreamError

__version__ = "0.1.0"

__all__ = ["portable_hash", "PyStreamError", "__version__"]
