import pandas as pd

from lira.translate import cache as cache_mod
from lira.translate.cache import TranslationCache, cache_key


def _row(k: str, raw: str) -> dict:
    return {"cache_key": k, "text_sha": "s", "agent": "a", "backend": "simulated", "model": "m",
            "prompt_version": "v1", "raw": raw, "distortion": None}


def test_key_depends_on_every_part():
    base = {"agent": "a", "backend": "openai", "model": "m", "prompt_version": "v1",
            "settings": {"temperature": 0.0}}
    k = cache_key("hello", **base)
    assert k == cache_key("hello", **base)
    for change in ({"agent": "b"}, {"model": "m2"}, {"prompt_version": "v2"}, {"settings": {"temperature": 0.5}}):
        assert cache_key("hello", **{**base, **change}) != k
    assert cache_key("hello!", **base) != k


def test_last_write_wins_and_compaction_keeps_everything(tmp_path, monkeypatch):
    c = TranslationCache(tmp_path)
    assert c.load() == {}
    c.append([_row("k1", "one"), _row("k2", "two")])
    c.append([_row("k2", "two-again")])
    (tmp_path / ".shard-x.parquet.123.tmp").write_bytes(b"half-written")  # an interrupted write
    c.append([_row("k3", "three")])
    monkeypatch.setattr(cache_mod, "MAX_SHARDS", 2)
    loaded = c.load()
    assert {k: v["raw"] for k, v in loaded.items()} == {"k1": "one", "k2": "two-again", "k3": "three"}
    assert len(c.shards()) == 1  # merged
    c.append([_row("k1", "one-new")])
    assert c.load()["k1"]["raw"] == "one-new"
    assert isinstance(pd.read_parquet(c.shards()[0]), pd.DataFrame)
