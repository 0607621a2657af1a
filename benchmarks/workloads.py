"""Seeded generators and plain-Python references for the end-to-end workloads (W1-W4)."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np

from pystream.streaming.sources.generator import ZipfLines


def zipf_batches(total_lines: int, batch_lines: int, seed: int = 42) -> list[list[str]]:
    """W1/W2 input: lines of 10 words, Zipf(1.1) over a 100,000-word vocabulary."""
    gen = ZipfLines(10, 100_000, 1.1, seed)
    return [gen.lines(lo, min(lo + batch_lines, total_lines)) for lo in range(0, total_lines, batch_lines)]


def wordcount_reference(batches: list[list[str]]) -> list[Counter]:
    """The plain-Python word count per batch: a Counter over the split lines."""
    out = []
    for batch in batches:
        c: Counter = Counter()
        for line in batch:
            c.update(line.split())
        out.append(c)
    return out


def event_batches(total: int, batch: int, keys: int, seed: int = 7) -> list[list[tuple[int, float]]]:
    """W3 input: (int key, float value) events over ``keys`` keys."""
    rng = np.random.default_rng(seed)
    out = []
    for lo in range(0, total, batch):
        n = min(batch, total - lo)
        k = rng.integers(0, keys, n).tolist()
        v = np.round(rng.random(n) * 100, 3).tolist()
        out.append(list(zip(k, v)))
    return out


def state_reference(batches: list[list[tuple[int, float]]]) -> dict[int, tuple[int, float]]:
    """The plain-Python running (count, sum) per key: a dict update per event."""
    state: dict[int, tuple[int, float]] = {}
    for batch in batches:
        for k, v in batch:
            c, s = state.get(k, (0, 0.0))
            state[k] = (c + 1, s + v)
    return state


CAMPAIGNS = 100
ADS_PER_CAMPAIGN = 10


def ad_campaigns(seed: int = 3) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"ad-{c}-{a}-{rng.randrange(10**6)}": f"campaign-{c}"
            for c in range(CAMPAIGNS) for a in range(ADS_PER_CAMPAIGN)}


def yahoo_batches(total: int, batch: int, ads: list[str], seed: int = 11) -> list[list[str]]:
    """W4 input: JSON ad events, event_time in ms advancing 1 s per 10,000 events."""
    rng = random.Random(seed)
    types = ["view", "click", "purchase"]
    ad_types = ["banner", "modal", "sponsored-search", "mail", "mobile"]
    out = []
    for lo in range(0, total, batch):
        rows = []
        for i in range(lo, min(lo + batch, total)):
            rows.append(json.dumps({
                "user_id": f"u{rng.randrange(100_000)}", "page_id": f"p{rng.randrange(10_000)}",
                "ad_id": ads[rng.randrange(len(ads))], "ad_type": ad_types[rng.randrange(5)],
                "event_type": types[rng.randrange(3)], "event_time": 1_700_000_000_000 + i // 10,
                "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"}))
        out.append(rows)
    return out


def yahoo_reference(batches: list[list[str]], campaigns: dict[str, str]) -> Counter:
    """Views per (campaign, 10-second window start), with the same json.loads."""
    counts: Counter = Counter()
    for batch in batches:
        for line in batch:
            e = json.loads(line)
            if e["event_type"] == "view":
                counts[(campaigns[e["ad_id"]], e["event_time"] // 10_000 * 10_000)] += 1
    return counts
