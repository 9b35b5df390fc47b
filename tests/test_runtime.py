"""lira.runtime.trim_heap returns the C allocator's free pages to the OS (glibc malloc_trim)."""

from __future__ import annotations

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

