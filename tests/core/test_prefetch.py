"""The prefetching helpers of csrc/ survive the compiler.

GCC counts a prefetch as no side effect: a helper whose only effect is prefetching, if not inlined before
GCC's pure-function analysis, is found to be pure and every call of it is dropped. GCC 12 at -O3 so dropped
ps_agg_prefetch_entry and ps_agg_prefetch_key from every loop that called them (PS_PREFETCHING now forces
them inline). Each helper is compiled here, called from an exported function, by the compiler and at the
optimisation level the extensions are built with, and its prefetch instructions must be in the output.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The prefetch instruction's mnemonic, by machine.
MNEMONIC = {"x86_64": "prefetch", "amd64": "prefetch", "aarch64": "prfm", "arm64": "prfm"}

CALLERS = r"""
#include "ps_agg.h"
#include "ps_frame.h"
void call_slot(const ps_agg_table *t, int64_t h) { ps_agg_prefetch_slot(t, h); }
void call_entry(const ps_agg_table *t, int64_t h) { ps_agg_prefetch_entry(t, h); }
void call_key(const ps_agg_table *t, int64_t h) { ps_agg_prefetch_key(t, h); }
void call_strtab(const ps_strtab *t, const uint8_t *s, size_t n) { ps_strtab_prefetch(t, s, n); }
"""

#: Prefetch instructions each caller must hold: an entry may straddle two cache lines, a short str too.
EXPECTED = {"call_slot": 1, "call_entry": 2, "call_key": 2, "call_strtab": 1}


def _assembly(tmp_path) -> str:
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    src = tmp_path / "callers.c"
    src.write_text(CALLERS)
    out = tmp_path / "callers.s"
    subprocess.run(cc + ["-O3", "-std=c11", "-fPIC", "-I", os.path.join(ROOT, "csrc"), "-S", str(src), "-o",
                         str(out)], check=True, capture_output=True)
    return out.read_text()


def _bodies(asm: str) -> dict[str, str]:
    """Each function's instructions, from its label to the next function's label."""
    bodies: dict[str, list[str]] = {}
    current = None
    for line in asm.splitlines():
        m = re.match(r"^(call_\w+):", line)
        if m:
            current = m.group(1)
            bodies[current] = []
        elif current is not None:
            bodies[current].append(line)
    return {k: "\n".join(v) for k, v in bodies.items()}


def test_every_prefetching_helper_keeps_its_prefetches(tmp_path):
    mnemonic = MNEMONIC.get(platform.machine().lower())
    if mnemonic is None:
        pytest.skip(f"no known prefetch mnemonic for {platform.machine()}")
    bodies = _bodies(_assembly(tmp_path))
    found = {name: len(re.findall(rf"\b{mnemonic}\w*\b", bodies.get(name, ""))) for name in EXPECTED}
    assert found == EXPECTED
