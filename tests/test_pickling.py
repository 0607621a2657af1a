import pickle
import traceback

import cloudpickle
import pytest

from pystream import pickling

OFFSET = 3


def _code_files(code):
    yield code.co_filename
    for const in code.co_consts:
        if hasattr(const, "co_filename"):
            yield from _code_files(const)


def test_functions_carried_by_value_keep_their_source_file():
    def outer(n):
        # A closure over a local and a global, with a nested code object (the comprehension's).
        return lambda x: [x // (i - n) + OFFSET for i in range(x)]

    fn = outer(1)
    blob = pickling.dumps(fn)
    assert blob == pickling.dumps(fn)  # the same bytes every time: a worker's digest of it holds
    copy = pickle.loads(blob)
    assert copy is not fn and copy(1) == fn(1) == [2]
    assert set(_code_files(copy.__code__)) == {__file__}
    with pytest.raises(ZeroDivisionError) as info:
        copy(2)
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert frame.filename == __file__
    assert "x // (i - n)" in frame.line  # the source line, read from that file


def test_payloads_are_what_cloudpickle_would_give_but_the_file_name():
    def f(x):
        return x + OFFSET

    ours, theirs = pickle.loads(pickling.dumps(f)), pickle.loads(cloudpickle.dumps(f))
    assert ours(1) == theirs(1) == 4
    assert ours.__code__.co_code == theirs.__code__.co_code
    assert ours.__code__.replace(co_filename="x") == theirs.__code__.replace(co_filename="x")
    assert ours.__code__.co_filename == __file__
