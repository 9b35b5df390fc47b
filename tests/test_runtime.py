"""lira.runtime.trim_heap returns the C allocator's free pages to the OS (glibc malloc_trim); importing lira bounds oneDNN's caches."""

from __future__ import annotations

import os
import platform

import psutil
import pytest

from lira.runtime import trim_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_chunks_go_back_to_the_os():
    proc = psutil.Process()
    # 200 MiB in 100 kB blocks (below glibc's mmap threshold: they live on the heap), then all but
    # every 64th freed: the survivors pin the heap, so glibc keeps the freed pages resident.
    blocks = [bytearray(100_000) for _ in range(2100)]
    for b in blocks:
        b[::4096] = b"\x01" * len(b[::4096])  # touch every page
    kept = blocks[::64]
    del blocks
    before = proc.memory_info().rss
    trim_heap()
    after = proc.memory_info().rss
    assert before - after > 100 * 2**20, f"RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"
    assert all(len(k) == 100_000 for k in kept)



def test_importing_lira_encoders_bounds_onednn_caches_unless_the_user_set_them():
    import subprocess
    import sys

    code = "import os, lira.encoders.base; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["32", "32"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "LRU_CACHE_CAPACITY": "500"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["32", "500"]
