"""pystream frames vs pickle (protocol 5) on 1M small keyed records.

    pytest benchmarks/bench_frames.py                 # pytest-benchmark timings
    python benchmarks/bench_frames.py                 # side-by-side ratios (ratios())
    python benchmarks/bench_frames.py --arena-cache   # the same, both on the allocator pystream's workers use

Decoding 1M records makes about 100 MB of fresh objects (pickle: 150 MB). With CPython's own allocator each
4 KiB page of them is a kernel page fault: more than half of pickle's time here. A large ``frames.decode``
borrows pystream's arena allocator for its length, which maps them from 2 MiB huge pages (pickle, run after
it in the same process, is back on CPython's allocator). pystream's workers also keep freed arenas mapped
(``spark.pystream.worker.arenaCacheMB``), so ``--arena-cache`` installs that cache in this process first (it
cannot be removed again, hence its own process) and measures both contenders on it: the decode cost a worker
actually pays, side by side, with pickle on the same allocator.
"""

from __future__ import annotations

import functools
import pickle
import time

from pystream import frames
from pystream._core.memory import install_arena_cache

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


def ratios_on_arena_cache(rounds: int = 5) -> dict:
    """``ratios()`` measured in a fresh interpreter that runs on the workers' arena cache."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--arena-cache", "--json", "--rounds", str(rounds)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--arena-cache", action="store_true", help="run on the workers' arena cache (256 MB)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.arena_cache:
        install_arena_cache(256 << 20)
    result = ratios(args.rounds)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:30s} {value:.3f}" if isinstance(value, float) else f"{key:30s} {value}")
