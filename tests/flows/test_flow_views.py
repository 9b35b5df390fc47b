"""What a person reads in the Prefect UI: the headline artifact and the parameters' descriptions."""

from __future__ import annotations

import json
from pathlib import Path

from flows.pipeline import flatten_metrics, headline_markdown, parameter_help

MAIN = Path(__file__).resolve().parents[2]
EVALUATE = json.loads((MAIN / "metrics" / "evaluate.json").read_text())


def test_metrics_artifact_is_a_short_markdown_table_with_a_link_to_the_rest():
    n = len(flatten_metrics(EVALUATE))
    md = headline_markdown(EVALUATE, "metrics/evaluate.json", n, "http://127.0.0.1:5000/#/experiments/1/runs/abc")
    lines = md.splitlines()
    table = [ln for ln in lines if ln.startswith("| ")]
    systems, langs = EVALUATE["systems"], EVALUATE["systems"]["lira"]["per_language"]
    assert len(table) == 2 + len(systems) + len(langs)  # two header rows + a row per system and per language
    assert len(lines) < 40 and n > 300  # instead of a row per value
    for name in systems:
        assert any(ln.startswith(f"| {name} |") for ln in table), name
    frozen = next(ln for ln in table if ln.startswith("| frozen |"))
    gain = EVALUATE["lira_minus"]["frozen"]["retrieval.ndcg@10"]
    assert f"{gain['diff']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]" in frozen
    assert "[MLflow run](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in md and f"({n} values" in md
    assert "MLflow run" not in headline_markdown(EVALUATE, "metrics/evaluate.json", n, None)


def test_every_flow_parameter_has_a_description_in_its_schema():
    from flows.pipeline import lira_pipeline
    from flows.promote import promote
    from flows.retrain import retrain
    from lira.config import SharedParams

    for f in (retrain, lira_pipeline, promote):
        props = f.parameters.model_dump()["properties"]
        missing = [k for k, v in props.items() if not v.get("description")]
        assert not missing, f"{f.name}: parameters without description: {missing}"
    props = retrain.parameters.model_dump()["properties"]
    assert SharedParams.model_fields["preset"].description in props["preset"]["description"]  # from the config
    assert props["overrides"]["description"] == parameter_help()["overrides"]
