"""The infra tests parse files only; Prefect (imported for its templating) gets a throwaway home."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_HOME = None
if "PREFECT_HOME" not in os.environ:  # the flow tests' conftest may have set one already
    _HOME = tempfile.mkdtemp(prefix="lira-prefect-home-infra-")
    os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session", autouse=True)
def _cleanup_prefect_home():
    yield
    if _HOME:
        shutil.rmtree(_HOME, ignore_errors=True)
