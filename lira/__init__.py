"""lira: Linguistic Robust Anchoring (arXiv 2510.14466)."""

import os

# Bounded native caches, set before torch creates its first oneDNN primitive (both are read then,
# not at `import torch`; a value the user exported wins). oneDNN's primitive cache (default 1024)
# and PyTorch's ideep LRU of oneDNN computations (default 1024) keep one entry per matmul shape,
# and length-sorted batches of varying length bring a new shape at nearly every step: over
# train_arca's LoRA epoch they grew its RSS peak from ~1.6 to 2.26 GiB. A forward's and backward's
# own shapes fit in 32, so the epoch ran in the same time (bench/results/stage_memory_caps*.json;
# README, "Peak RSS of the process tree"), and a recreated primitive computes the same numbers.
NATIVE_CACHE_CAPACITY = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "32", "LRU_CACHE_CAPACITY": "32"}
for _name, _capacity in NATIVE_CACHE_CAPACITY.items():
    os.environ.setdefault(_name, _capacity)
del _name, _capacity
