"""Stage outputs under several ranks: rank 0 writes them, atomically; the others write nothing.

Every rank runs the same code (the collectives need all of them), so a stage hands its output
folder through :func:`output_dir`: the real published folder on rank 0 (lira.io.publish_dir: swapped
in whole or not at all), a throwaway folder on the other ranks; single files go through
:func:`on_main`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lira.distributed.env import barrier, is_main


@contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    from lira.io import publish_dir

    if is_main():
        with publish_dir(path) as out:
            yield out
    else:
        with tempfile.TemporaryDirectory(prefix=f".{Path(path).name}.rank-") as tmp:
            yield Path(tmp)
    barrier()  # no rank moves on before rank 0 has published


def on_main(write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``write(*args, **kwargs)`` on rank 0 only (None elsewhere)."""
    return write(*args, **kwargs) if is_main() else None
