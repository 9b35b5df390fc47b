"""MLflow tracking for lira: nested stage runs (:mod:`runs`), the pyfunc model (:mod:`model`) and
the registry's champion gate (:mod:`registry`).

Submodules are imported on use (``from lira.tracking import runs``): mlflow costs ~1.6 s to import
and the CLI should not pay it for ``lira --help``.
"""
