"""The policy prior: similarity of a text to the policy's own descriptions of labels and framings."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.policy_prior import PolicyPrior, PolicyPriorConfig, split_pieces  # noqa: E402
from inference.text_encoder import TextEncoder, TextEncoderConfig  # noqa: E402

# Phrasings written for this test (none of them is a prototype description).
PROMOTIONS = {
    "scam": "send me 0.1 eth and I send back 0.2, guaranteed profit",
    "drugs": "got oxy and percs for sale, no script needed, delivery tonight",
    "weapons": "two pistols for sale with three boxes of rounds, cash only",
}
BENIGN = "we baked sourdough bread with my grandmother this afternoon"


@pytest.fixture(scope="module")
def prior():
    return PolicyPrior(encoder=TextEncoder(TextEncoderConfig(num_threads=1)))


def test_demo_policy_features_are_the_labels_then_the_framings(prior):
    assert prior.feature_names == (
        "scam", "drugs", "weapons",
        "framing:protective", "framing:news", "framing:educational", "framing:disclaimer",
    )  # fmt: skip


def test_a_promotion_in_new_words_is_closest_to_its_own_label(prior):
    rows = prior.features_batch([*PROMOTIONS.values(), BENIGN])  # (4, 7)
    labels = prior.feature_names[:3]
    assert [labels[int(row[:3].argmax())] for row in rows[:3]] == list(PROMOTIONS)
    assert rows[:3, :3].max(axis=1).min() > rows[3, :3].max() + 0.15


def test_a_news_framing_scores_on_the_news_column(prior):
    news, benign = prior.features_batch(["breaking: officers arrested a dealer at the harbour, reporters say", BENIGN])
    column = prior.feature_names.index("framing:news")
    assert news[column] > benign[column] + 0.15


def test_one_violating_piece_is_not_diluted_by_benign_ones(prior):
    drugs = prior.feature_names.index("drugs")
    alone = prior.features([PROMOTIONS["drugs"]])
    among_chatter = prior.features([BENIGN, "thanks for watching", PROMOTIONS["drugs"], "see you next week"])
    assert among_chatter[drugs] == pytest.approx(alone[drugs], abs=1e-5)


def test_empty_text_has_all_zero_features(prior):
    rows = prior.features_batch(["", [], ["  "]])
    assert rows.shape == (3, prior.n_features) and not rows.any()


def test_split_pieces_keeps_sentences_and_the_whole_text():
    assert split_pieces("hello there. dm me to buy!\nlink below") == [
        "hello there.", "dm me to buy!", "link below", "hello there. dm me to buy!\nlink below",
    ]  # fmt: skip
    assert split_pieces("one sentence only") == ["one sentence only"]
    assert split_pieces("") == []


def test_config_round_trips_through_json_and_changes_the_features(prior):
    config = PolicyPriorConfig()
    assert PolicyPriorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    only_weapons = PolicyPriorConfig(label_prototypes=(("weapons", ("selling guns",)),),
                                     framing_prototypes=(("news", ("a news report",)),))  # fmt: skip
    custom = PolicyPrior(only_weapons, prior.encoder)
    assert custom.feature_names == ("weapons", "framing:news")
    assert custom.features(PROMOTIONS["weapons"])[0] > custom.features(BENIGN)[0]


def test_a_label_without_prototypes_is_refused():
    with pytest.raises(ValueError, match="at least one prototype"):
        PolicyPriorConfig(label_prototypes=(("scam", ()),))


def test_pieces_seen_before_are_not_embedded_again(prior, monkeypatch):
    texts = ["cheap glocks, no background check. dm me", "knitting a scarf for my sister"]
    first = prior.features_batch(texts)
    calls = []
    encode = prior.encoder.encode
    monkeypatch.setattr(prior.encoder, "encode", lambda pieces: calls.append(list(pieces)) or encode(pieces))
    np.testing.assert_array_equal(prior.features_batch(texts), first)
    assert calls == []
    prior.features_batch([texts[0], "a brand new sentence"])
    assert calls == [["a brand new sentence"]]
    # Other prototypes mean other similarities: nothing is shared between prototype sets.
    other = PolicyPrior(PolicyPriorConfig(label_prototypes=(("scam", ("send me crypto",)),)), prior.encoder)
    assert other.features_batch([texts[1]]).shape == (1, other.n_features)
    assert [texts[1]] in calls[1:]
