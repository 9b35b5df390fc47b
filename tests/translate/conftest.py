from pathlib import Path

import pytest
from translate_testdata import sample_texts, write_texts


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_texts(tmp_path, sample_texts())
    return tmp_path
