from collections.abc import Callable, Hashable, Iterable
from typing import Any

class AggKernel:
    """AggTable's storage and per-record loops (see pystream._core.aggregation.AggTable)."""

    reducer: Callable[[Any, Any], Any] | None
    inverse: Callable[[Any, Any], Any] | None

    def update(self, records: Iterable[tuple[Hashable, Any]]) -> None: ...
    def update_keys(self, keys: Iterable[Hashable]) -> None: ...
    def count_words(self, lines: Iterable[str]) -> None: ...
