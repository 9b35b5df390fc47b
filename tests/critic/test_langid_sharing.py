"""Both language-ID label sets come from one loaded py3langid model, and answer as separate loads do."""

from __future__ import annotations

from py3langid import langid

from lira.critic import flags

TEXTS = ["red running shoes for men", "Điện thoại này có pin rất tốt", "Ponsel ini baterainya sangat bagus",
         "Napakaganda ng baterya", "the cat sat", "Flan"]


def test_label_sets_share_one_model_and_match_separate_loads():
    full, latin = flags._identifier(), flags._identifier(latin_only=True)
    assert full.tk_nextmove is latin.tk_nextmove and full._full_model is latin._full_model  # loaded once
    assert set(latin.nb_classes) < set(full.nb_classes) < set(flags._full_identifier().nb_classes)
    load = getattr(langid.LanguageIdentifier, "from_pickled_model", None) or langid.LanguageIdentifier.from_model_file
    for shared in (full, latin):
        alone = load(langid.MODEL_FILE, norm_probs=True)
        alone.set_languages(list(shared.nb_classes))
        for t in TEXTS:
            assert shared.rank(t) == alone.rank(t)
            assert shared.classify(t) == alone.classify(t)
