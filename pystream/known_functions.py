"""Faster stand-ins for well-known per-record functions: the very same results and the very same errors.

``rdd.map(f)`` runs ``stand_in(f)`` instead of ``f`` for each record. Each stand-in takes a shortcut through the
same library code that ``f`` would run, for the commonest input only, and calls ``f`` itself for anything else
(another type, an unusual shape, any error), so whatever ``f`` would answer is what the user gets. Stand-ins
are module-level functions: a task ships them by name, and each worker binds them to its own library objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_loads = json.loads
# What json.loads(s) calls, through json._default_decoder.decode and raw_decode, for a str without
# surrounding whitespace: this very scanner (the C one where CPython has it), from position 0.
_scan_once = json._default_decoder.scan_once  # type: ignore[attr-defined]
_WHITESPACE = frozenset(" \t\n\r")


def json_loads(s: Any) -> Any:
    """``json.loads(s)``; a str that starts and ends with its JSON value goes straight to the json module's
    scanner. json.loads wraps that very call in two Python-level calls and two regular expression matches for
    the whitespace around the value: a third of its time on a short object."""
    if type(s) is str and s and s[0] not in _WHITESPACE:
        try:
            obj, end = _scan_once(s, 0)
        except Exception:
            # json.loads says what is wrong, in its own words (it turns the scanner's StopIteration into a
            # JSONDecodeError, for one).
            return _loads(s)
        if end == len(s):
            return obj
    # Whitespace around the value, extra data after it, bytes, a str subclass: json.loads decides.
    return _loads(s)


def stand_in(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Return the function to run per record in place of ``f``: a faster equivalent, or ``f`` itself."""
    if f is _loads:
        return json_loads
    return f
