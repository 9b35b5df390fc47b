"""The infra tests parse files only; Prefect (imported for its templating) gets a throwaway home."""

from __future__ import annotations

import os
import tempfile

if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="lira-prefect-home-infra-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
