"""Prefect orchestration for lira: the ``lira-pipeline``, ``lira-retrain`` and ``lira-promote`` flows.

The flows never re-implement a stage: every pipeline task shells out to ``dvc repro --single-item
<stage>`` so that DVC's cache decides what reruns and ``dvc repro`` / ``make run`` / the Prefect UI all
produce the same outputs. ``lira`` never imports this package.

- ``flows/pipeline.py``: the six stages as tasks, params overrides, artifacts (metrics table, MLflow link).
- ``flows/retrain.py``: ``dvc pull`` -> pipeline -> evaluate -> promote through the MLflow registry.
- ``flows/promote.py``: move the champion alias (gate or ``force``).
- ``flows/deploy.py``: serve all three on one machine (``python -m flows.deploy``);
  ``prefect.yaml`` at the top level holds the work-pool deployments (``lira-cpu``, ``lira-gpu``).
"""
