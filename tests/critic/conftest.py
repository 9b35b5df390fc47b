from pathlib import Path

import pytest
from critic_testdata import fake_embed_texts, sample_texts, write_texts


@pytest.fixture(autouse=True)
def fake_encoders(monkeypatch):
    """lira.encoders.embed_texts is the coordinator's; the critic tests never build a model."""
    import lira.encoders

    calls = []

    def fake(shared, texts, path, kind=None, root=None):
        calls.append((path, kind, len(texts)))
        return fake_embed_texts(shared, texts, path, kind, root)

    monkeypatch.setattr(lira.encoders, "embed_texts", fake, raising=False)
    return calls


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_texts(tmp_path, sample_texts())
    return tmp_path
