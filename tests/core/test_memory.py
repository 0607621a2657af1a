"""The arena cache of worker processes (pystream._core.memory)."""

import subprocess
import sys
import textwrap

import pytest

from pystream import SparkConf, SparkContext
from pystream.context import EXECUTOR_KEY


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_freed_arenas_are_reused_and_objects_stay_intact():
    # A fresh interpreter: the cache is installed in worker processes only, never in the test's own process.
    out = run_python("""
        from pystream._core.memory import install_arena_cache, arena_cache_stats, ARENA_SIZE
        install_arena_cache(32 * ARENA_SIZE)
        for round in range(3):
            data = [("key%d" % i, i * 1.5, (i, str(i))) for i in range(300_000)]
            assert data[123_456] == ("key123456", 123_456 * 1.5, (123_456, "123456"))
            del data
        s = arena_cache_stats()
        assert s["installed"] and s["capacity"] == 32, s
        assert s["hits"] >= 32 * 2, s          # later rounds took arenas the earlier ones freed
        assert 0 < s["cached"] <= 32, s         # never more than the capacity kept
        assert s["released"] > 0, s             # the rest went back to the system
        install_arena_cache(0)                  # lowering the capacity unmaps what is over it
        assert arena_cache_stats()["cached"] == 0
        print("ok")
    """)
    assert out.strip() == "ok"


def test_negative_capacity_is_refused():
    from pystream._core.memory import install_arena_cache

    with pytest.raises(ValueError):
        install_arena_cache(-1)


def arena_stats(_it):
    from pystream._core.memory import arena_cache_stats

    return [arena_cache_stats()]


def test_workers_run_with_the_configured_cache():
    conf = (SparkConf(loadDefaults=False).set(EXECUTOR_KEY, "process")
            .set("spark.pystream.worker.arenaCacheMB", "8"))
    sc = SparkContext("local[2]", "arena-cache", conf)
    try:
        sc.parallelize(range(200_000), 2).map(lambda x: (str(x), x)).count()
        stats = sc.parallelize([0, 1], 2).mapPartitions(arena_stats).collect()
    finally:
        sc.stop()
    assert [s["installed"] for s in stats] == [True, True]
    assert all(s["capacity"] == 8 for s in stats)


def test_a_bulk_decode_maps_its_objects_from_huge_pages_and_gives_the_allocator_back():
    # A fresh interpreter with CPython's own arena allocator, as in a user's driver process.
    out = run_python("""
        import gc
        from pystream import frames
        from pystream._core.memory import arena_cache_stats

        def anon_huge_kb():
            with open("/proc/self/smaps_rollup") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("AnonHugePages:"))

        def thp_faults():
            # Huge-page faults the kernel served, and those it served with small pages for want of a free
            # huge page (a fragmented host): the request is ours, the outcome the kernel's.
            with open("/proc/vmstat") as fh:
                v = dict(l.split() for l in fh)
            return int(v.get("thp_fault_alloc", 0)), int(v.get("thp_fault_fallback", 0))

        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            thp = fh.read().split("[")[1].split("]")[0]
        faults_before = thp_faults()
        records = [(f"key{i % 1000}", i, i * 0.5) for i in range(400_000)]
        frame = frames.encode(records)
        before = arena_cache_stats()
        huge_before = anon_huge_kb()
        decoded = frames.decode(frame)
        during = arena_cache_stats()
        assert decoded == records
        assert not during["bulk"] and not during["installed"], during
        # The decode's arenas came from pystream's allocator; with transparent huge pages not off, as huge pages.
        assert during["misses"] - before["misses"] >= 40, (before, during)
        if thp != "never":
            served, fell_back = (a - b for a, b in zip(thp_faults(), faults_before))
            assert served + fell_back >= 16, (served, fell_back)  # >= 32 MiB asked for as huge pages
            if fell_back == 0:
                assert anon_huge_kb() - huge_before >= 32 * 1024, (thp, anon_huge_kb(), huge_before)
        # CPython's own allocator is back: objects made now come from its arenas, not from pystream's.
        more = [(i, str(i)) for i in range(200_000)]
        assert arena_cache_stats()["misses"] == during["misses"]
        # And it frees the arenas pystream mapped, giving the memory back (no huge page is left).
        del decoded, more
        gc.collect()
        assert anon_huge_kb() <= huge_before + 2048, anon_huge_kb()
        small = frames.decode(frames.encode(records[:100]))  # too few records to borrow the allocator
        assert arena_cache_stats()["misses"] == during["misses"] and small == records[:100]
        print("ok")
    """)
    assert out.strip() == "ok"


def test_a_failing_or_nested_bulk_decode_restores_the_allocator():
    out = run_python("""
        import pickle
        from pystream import frames
        from pystream.errors import CorruptFrameError
        from pystream._core.memory import arena_cache_stats

        inner = frames.encode(list(range(20_000)))

        class Nested:
            # Unpickling it decodes another bulk frame, inside the outer frame's decode.
            def __reduce__(self):
                return (frames.decode, (inner,))

        outer = frames.encode([Nested()] + [(i, "x") for i in range(20_000)])
        got = frames.decode(outer)
        assert got[0] == list(range(20_000)) and got[1:] == [(i, "x") for i in range(20_000)]
        assert not arena_cache_stats()["bulk"]

        # A frame whose payload ends half-way through its records (checksum made to match) fails after
        # decoding thousands of them: that ends the bulk allocation too.
        import struct, xxhash
        raw = frames.encode([(i, "y" * 10) for i in range(50_000)], compress=False)
        head = len(frames.MAGIC) + struct.calcsize("<BBHQQQQ")  # the last field is the checksum
        payload = raw[head:][: (len(raw) - head) // 2]
        bad = bytearray(frames.MAGIC + struct.pack("<BBHQQQQ", 1, 0, 0, 50_000, len(payload), len(payload), 0)
                        + payload)
        struct.pack_into("<Q", bad, head - 8, xxhash.xxh64_intdigest(bytes(bad[head:])))
        try:
            frames.decode(bytes(bad))
        except CorruptFrameError as e:
            assert "payload offset" in str(e), e
        else:
            raise AssertionError("a truncated frame decoded")
        assert not arena_cache_stats()["bulk"]
        n = arena_cache_stats()["misses"]
        more = [(i, str(i)) for i in range(200_000)]
        assert arena_cache_stats()["misses"] == n
        print("ok")
    """)
    assert out.strip() == "ok"


def test_big_table_arrays_are_faulted_in_by_huge_pages_and_given_back_when_freed():
    # A fresh interpreter, so that nothing else maps or faults memory meanwhile. Keys are made first: what
    # is measured is the table's own arrays (csrc/ps_bigmem.h), 30 MB of slots and entries for 400K keys.
    out = run_python("""
        import operator, resource
        from pystream._core.aggregation import AggTable

        def anon_kb():
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("RssAnon:"))

        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            thp = fh.read().split("[")[1].split("]")[0]
        keys = list(range(400_000))
        base = anon_kb()
        for round in range(3):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = AggTable(operator.add)
            t.update_keys(keys)
            t.update_keys(keys[::2])
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            assert len(t) == 400_000 and t[0] == 2 and t[1] == 1 and t[399_998] == 2
            grown = anon_kb() - base
            assert grown > 20_000, grown
            if thp != "never":
                # 4 KiB pages would take 7,000 or more; each array's tail that fills no huge page takes 4 KiB
                # pages (the next test), about 2,000 faults in all here.
                assert faults < 3_000, (round, faults)
            del t
            assert anon_kb() - base < 2_000, (round, grown, anon_kb() - base)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_a_big_table_array_holds_only_the_pages_it_uses():
    # 24,000 keys: 32,768 entries (1.5 MiB, of which 1.1 MiB written) and 131,072 slots (1 MiB), each array
    # mapped on its own. Mapped in whole huge pages they held 4 MiB: up to 2 MiB per array for nothing (7 MB
    # per W1 worker).
    out = run_python("""
        import operator
        from pystream._core.aggregation import AggTable

        def anon_kb():
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("RssAnon:"))

        keys = list(range(24_000))
        base = anon_kb()
        t = AggTable(operator.add)
        t.update_keys(keys)
        grown = anon_kb() - base
        written = (24_000 * 48 + 131_072 * 8) // 1024  # the entries used, and every slot
        assert len(t) == 24_000 and t[23_999] == 1
        assert grown < written + 256, (grown, written)
        print("ok")
    """)
    assert out.strip() == "ok"
