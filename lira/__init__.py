"""lira: Linguistic Robust Anchoring (arXiv 2510.14466)."""
