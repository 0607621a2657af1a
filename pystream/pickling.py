"""How pystream pickles the user's functions for workers and checkpoints: cloudpickle, keeping source files.

Recent cloudpickle (3.1.x, since its fix for payloads that changed with a notebook's file names) writes every
function it carries by value (a lambda, a function of ``__main__``) with the file name ``<dynamic-code>``. A
worker's traceback then names no file and shows no source line: ``File "<dynamic-code>", line 6, in parse``.
pystream keeps the real file name, as earlier cloudpickle releases did. A driver still pickles a function to the
same bytes every time (its digest decides whether a worker already has it); only two drivers running the same
code from different paths differ, which nothing compares.

A task function (``dumps_task``) also leaves out the values of the broadcasts it reads: each becomes a reference,
and the executor sends the value to each worker once (see pystream.broadcast).
"""

from __future__ import annotations

import io
import pickle
import sys
import types
import weakref
from collections import ChainMap
from typing import Any

import cloudpickle

from pystream.broadcast import Broadcast, shipped

# cloudpickle's own reducer for code objects, where this cloudpickle has one (its module is not public API);
# without it, or where it keeps file names itself, its default pickling is used unchanged.
_cloudpickle_code_reduce = getattr(getattr(cloudpickle, "cloudpickle", None), "_code_reduce", None)
_PLACEHOLDER = "<dynamic-code>"


def _code_reduce(code: types.CodeType) -> Any:
    rv = _cloudpickle_code_reduce(code)  # type: ignore[misc]
    make, args = rv[0], rv[1]
    # The placeholder is the only argument equal to it: a code object's name is an identifier or
    # "<lambda>"-like, never it.
    args = tuple(code.co_filename if type(a) is str and a == _PLACEHOLDER else a for a in args)
    return (make, args) + tuple(rv[2:])


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, with each code object's file name kept (see the module's docstring)."""

    if _cloudpickle_code_reduce is not None:
        dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


class _TaskPickler(Pickler):
    """Pickles a task function: each Broadcast it refers to becomes a reference, its value sent apart."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.broadcasts: dict[int, Broadcast] = {}

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Broadcast:
            obj.dump()  # pickled once, here if not before; a destroyed broadcast fails the job now, clearly
            self.broadcasts[obj._bid] = obj
            return (shipped, (obj._bid,))
        return super().reducer_override(obj)


def dumps_task(fn: Any) -> tuple[bytes, list[Broadcast]]:
    """Return task function ``fn`` pickled for workers, and the broadcasts it refers to (each worker must have
    their values before it runs ``fn``; see pystream.broadcast)."""
    with io.BytesIO() as buf:
        pickler = _TaskPickler(buf)
        pickler.dump(fn)
        return buf.getvalue(), list(pickler.broadcasts.values())


def dumps(obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """Return ``obj`` pickled as cloudpickle.dumps would, with source file names kept (read by pickle.loads)."""
    with io.BytesIO() as buf:
        Pickler(buf, protocol=protocol).dump(obj)
        return buf.getvalue()


# Classes of the driver's __main__, each pickled by value once (see main_classes).
_main_payloads: weakref.WeakKeyDictionary[type, bytes | None] = weakref.WeakKeyDictionary()


def main_classes() -> list[tuple[str, bytes]]:
    """The classes the driver's script (``__main__``) defines, each as (name, its cloudpickle by value).

    Workers never import the driver's script, so a record of such a class, pickled by reference
    (``__main__.Point``), could not be unpickled there; the executor defines these classes in each worker's
    ``__main__`` first. cloudpickle gives a class pickled by value the same identity every time it is loaded in a
    process, so a task function that names the class sees the very class its records have. A class that cannot
    be pickled is left out (its records then fail their task, saying why)."""
    main = sys.modules.get("__main__")
    if main is None:
        return []
    out = []
    for name, value in list(vars(main).items()):
        if not isinstance(value, type) or value.__module__ != "__main__" or value.__qualname__ != name:
            continue
        try:
            payload = _main_payloads[value]
        except KeyError:
            try:
                payload = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                payload = None
            _main_payloads[value] = payload
        if payload is not None:
            out.append((name, payload))
    return out

