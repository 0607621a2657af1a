"""pystream frames vs pickle (protocol 5) on 1M small keyed records.

    pytest benchmarks/bench_frames.py          # pytest-benchmark timings
    python benchmarks/bench_frames.py          # side-by-side ratios (ratios())
"""

from __future__ import annotations

import functools
import pickle
import time

from pystream import frames

N = 1_000_000


@functools.cache
def dataset() -> list:
    # Distinct str objects (equal strings repeat every 100k records), as records arrive from a parser.
    return [(f"key{i % 100_000}", i) for i in range(N)]


@functools.cache
def encoded() -> tuple[bytes, bytes]:
    recs = dataset()
    return frames.encode(recs), pickle.dumps(recs, protocol=5)


def _best(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        result = None  # free the previous result outside the timed region, for both contenders
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    del result
    return best


def ratios(rounds: int = 5) -> dict:
    """Best-of-``rounds`` timings of encode/decode for pystream and pickle, and their ratios (>1 = faster)."""
    recs = dataset()
    frame, pick = encoded()
    assert frames.decode(frame) == recs
    enc_ps = _best(lambda: frames.encode(recs), rounds)
    enc_pk = _best(lambda: pickle.dumps(recs, protocol=5), rounds)
    dec_ps = _best(lambda: frames.decode(frame), rounds)
    dec_pk = _best(lambda: pickle.loads(pick), rounds)
    enc_raw = _best(lambda: frames.encode(recs, compress=False), rounds)
    raw = frames.encode(recs, compress=False)
    dec_raw = _best(lambda: frames.decode(raw), rounds)
    return {
        "records": len(recs),
        "encode_speedup": enc_pk / enc_ps,
        "decode_speedup": dec_pk / dec_ps,
        "size_ratio": len(frame) / len(pick),
        "encode_speedup_uncompressed": enc_pk / enc_raw,
        "decode_speedup_uncompressed": dec_pk / dec_raw,
        "size_ratio_uncompressed": len(raw) / len(pick),
        "pystream_encode_s": enc_ps,
        "pickle_encode_s": enc_pk,
        "pystream_decode_s": dec_ps,
        "pickle_decode_s": dec_pk,
        "pystream_bytes": len(frame),
        "pickle_bytes": len(pick),
    }


PEDANTIC = {"rounds": 3, "iterations": 1, "warmup_rounds": 0}


def test_encode_pystream(benchmark):
    recs = dataset()
    benchmark.pedantic(frames.encode, args=(recs,), **PEDANTIC)


def test_encode_pickle(benchmark):
    recs = dataset()
    benchmark.pedantic(pickle.dumps, args=(recs, 5), **PEDANTIC)


def test_decode_pystream(benchmark):
    frame, _ = encoded()
    benchmark.pedantic(frames.decode, args=(frame,), **PEDANTIC)


def test_decode_pickle(benchmark):
    _, pick = encoded()
    benchmark.pedantic(pickle.loads, args=(pick,), **PEDANTIC)


def test_frame_smaller_than_pickle():
    frame, pick = encoded()
    assert len(frame) <= len(pick)


if __name__ == "__main__":
    for key, value in ratios().items():
        print(f"{key:30s} {value:.3f}" if isinstance(value, float) else f"{key:30s} {value}")
