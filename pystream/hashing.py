"""Stable hashing: XXH64 (implemented in csrc/ from the published specification) and ``portable_hash``.

``portable_hash(key)`` is the partitioning hash of pystream: equal keys hash equally in every process and every
run, so a key always lands in the same partition, in the driver and in any worker.
"""

from pystream._core.hashing import portable_hash, xxh64

__all__ = ["portable_hash", "xxh64"]
