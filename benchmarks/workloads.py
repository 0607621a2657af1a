"""Seeded, lazily generated inputs and plain-Python references for the end-to-end workloads (W1-W4).

Batch i of every workload is a pure function of (seed, i), so the reference and each pystream run generate the
same data one batch at a time and no process holds the whole input. Results are compared by an
order-independent digest: the sum of ``portable_hash(record)`` over the records, modulo 2**64.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable

from pystream import portable_hash
from pystream.streaming.sources.generator import ZipfLines

MASK = (1 << 64) - 1


def digest(records: Iterable) -> int:
    total = 0
    for r in records:
        total += portable_hash(r)
    return total & MASK


# -- W1 / W2 -------------------------------------------------------------------------------------------------
_ZIPF = ZipfLines(10, 100_000, 1.1, 42)


def warm_generators() -> None:
    """Import numpy and build the Zipf tables now, so that what they hold is not taken for data."""
    import numpy  # noqa: F401

    _ZIPF.lines(0, 1)


def zipf_batch(i: int, batch_lines: int) -> list[str]:
    """Lines of 10 words, Zipf(1.1) over a 100,000-word vocabulary (batch i)."""
    return _ZIPF.lines(i * batch_lines, (i + 1) * batch_lines)


def wordcount(lines: list[str]) -> Counter:
    """The plain-Python word count of one batch: a Counter over the split lines."""
    c: Counter = Counter()
    for line in lines:
        c.update(line.split())
    return c


# -- W3 ------------------------------------------------------------------------------------------------------
def event_batch(i: int, batch: int, keys: int, seed: int = 7) -> list[tuple[int, float]]:
    """(int key, float value) events over ``keys`` keys (batch i)."""
    # Imported here: workers unpickling the benchmark's digest function import this module, and must not
    # pay numpy's import inside the timed batches.
    import numpy as np

    rng = np.random.default_rng([seed, i])
    k = rng.integers(0, keys, batch).tolist()
    v = np.round(rng.random(batch) * 100, 3).tolist()
    return list(zip(k, v))


def state_update(state: dict, events: list[tuple[int, float]]) -> None:
    """The plain-Python running (count, sum) per key: a dict update per event."""
    get = state.get
    for k, v in events:
        c, s = get(k, (0, 0.0))
        state[k] = (c + 1, s + v)


# -- W4 ------------------------------------------------------------------------------------------------------
CAMPAIGNS = 100
ADS_PER_CAMPAIGN = 10


def ad_campaigns(seed: int = 3) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"ad-{c}-{a}-{rng.randrange(10**6)}": f"campaign-{c}"
            for c in range(CAMPAIGNS) for a in range(ADS_PER_CAMPAIGN)}


_TYPES = ["view", "click", "purchase"]
_AD_TYPES = ["banner", "modal", "sponsored-search", "mail", "mobile"]


def yahoo_batch(i: int, batch: int, ads: list[str], seed: int = 11) -> list[str]:
    """JSON ad events of batch i; event_time (ms) advances 1 s per 10,000 events."""
    rng = random.Random(seed * 1_000_003 + i)
    rows = []
    for n in range(i * batch, (i + 1) * batch):
        rows.append(json.dumps({
            "user_id": f"u{rng.randrange(100_000)}", "page_id": f"p{rng.randrange(10_000)}",
            "ad_id": ads[rng.randrange(len(ads))], "ad_type": _AD_TYPES[rng.randrange(5)],
            "event_type": _TYPES[rng.randrange(3)], "event_time": 1_700_000_000_000 + n // 10,
            "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"}))
    return rows


def yahoo_count(lines: list[str], campaigns: dict[str, str], counts: Counter) -> None:
    """Views per (campaign, 10-second window start), with the same json.loads."""
    for line in lines:
        e = json.loads(line)
        if e["event_type"] == "view":
            counts[(campaigns[e["ad_id"]], e["event_time"] // 10_000 * 10_000)] += 1
