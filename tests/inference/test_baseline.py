import itertools
import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.baseline import (  # noqa: E402
    AUDIO_DIM,
    BAND_DENSITY_INDEX,
    EMBEDDING_DIM,
    FEATURE_DIM,
    MEDIA_END,
    MISSING_FROM,
    PRIOR_DIM,
    STATS_FROM,
    VISUAL_DIM,
    BaselineClassifier,
    BaselineConfig,
    ModalityTextScorer,
    audio_features,
    cheap_features,
    entropy,
    evaluate_baseline,
    featurize_rows,
    train_baseline,
    visual_features,
)
from inference.text_encoder import TextEncoder, TextEncoderConfig  # noqa: E402
from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures  # noqa: E402

DRUG_VERBS = ["buy", "order", "get", "cheap", "selling"]
DRUGS = ["pills", "xanax", "oxy", "percs", "molly"]
DRUG_TAILS = ["now", "tonight, dm me", "no prescription needed", "fast delivery", "message me to order"]
PETS = ["cat", "dog", "kitten", "puppy", "parrot"]
PET_ACTS = ["sleeping on the sofa", "playing in the garden", "eating breakfast", "chasing a ball", "at the vet"]


def _video(caption, frames=(), audio=None, speech="", onscreen="") -> VideoFeatures:
    info = MediaInfo(container="test", duration_s=2.0, size_bytes=0, has_video=bool(frames), has_audio=audio is not None)
    return VideoFeatures(info=info, caption=caption, frames=list(frames), audio=audio,
                         transcript=[TranscriptSegment(0.0, 1.5, speech)] if speech else [],
                         ocr=[OcrLine(0.5, onscreen, 0.9, (0, 0, 10, 10))] if onscreen else [])


def _synthetic_rows(n, seed, label_noise=0.0):
    """Half "buy pills now"-style drug captions, half "my cat"-style ones, with tiny random media."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 2:
            caption, label = f"{rng.choice(DRUG_VERBS)} {rng.choice(DRUGS)} {rng.choice(DRUG_TAILS)}", "drugs"
        else:
            caption, label = f"my {rng.choice(PETS)} {rng.choice(PET_ACTS)}", "ok"
        if rng.random() < label_noise:
            label = "ok" if label == "drugs" else "drugs"
        frames = [Frame(t_s=float(t), image=rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for t in range(2)]
        audio = rng.normal(0, 0.05, SAMPLE_RATE // 4).astype(np.float32)
        rows.append((_video(caption, frames, audio), label))
    return rows


def _videos(rows):
    return [video for video, _ in rows]


# One torch thread: the test machine is small and shared, and two threads fighting over
# busy cores make MiniLM several times slower.
ENCODER_CONFIG = TextEncoderConfig(num_threads=1)


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(ENCODER_CONFIG)


@pytest.fixture(scope="module")
def trained():
    train, val, test = _synthetic_rows(80, 0), _synthetic_rows(40, 1), _synthetic_rows(60, 2)
    model = train_baseline(train, val, BaselineConfig(text_encoder=ENCODER_CONFIG), progress=False)
    return model, test


def test_entropy_is_in_nats():
    assert entropy([0.25] * 4) == pytest.approx(math.log(4))
    assert entropy([1.0, 0.0, 0.0, 0.0]) == 0.0


def test_baseline_learns_pills_vs_cats(trained):
    model, test = trained
    report = evaluate_baseline(model, test)
    assert report["accuracy"] > 0.9
    assert model.config.C in BaselineConfig().C_grid  # picked on validation NLL
    assert model.config.prior_weight in BaselineConfig().prior_weight_grid
    probs = model.predict_proba(featurize_rows(_videos(test), model.encoder))
    assert probs.shape == (len(test), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    json.dumps(report)


def test_score_one_video(trained):
    model, test = trained
    video, label = test[1]
    out = model.score(video)
    assert out.label == label == "drugs"
    assert set(out.probs) == {"ok", "scam", "drugs", "weapons"}
    assert out.entropy == pytest.approx(entropy(list(out.probs.values())))


@pytest.mark.parametrize("estimator", ["two_head", "logreg"])
def test_calibration_lowers_validation_nll(encoder, estimator):
    # 25% flipped labels and a weakly regularised model: raw probabilities are overconfident.
    train, val = _synthetic_rows(80, 3, label_noise=0.25), _synthetic_rows(80, 4, label_noise=0.25)
    X_val, y_val = featurize_rows(_videos(val), encoder), _labels(val)
    config = BaselineConfig(estimator=estimator, C=100.0)
    model = BaselineClassifier(config).fit(featurize_rows(_videos(train), encoder), _labels(train))

    def nll():
        p = model.predict_proba(X_val)
        return -np.mean(np.log([p[i, model.config.labels.index(y)] for i, y in enumerate(y_val)]))

    before = nll()
    model.calibrate(X_val, y_val)
    assert model.temperature_ > 1.0
    assert nll() < before - 0.05
    assert model.calibration_["nll_after"] == pytest.approx(nll())


def _labels(rows):
    return [label for _, label in rows]


def _pet_rows(n, seed, hidden_share):
    """Pet captions whose label is "drugs" for `hidden_share` of them: evidence the caption does
    not show (the benchmark's speech-only and on-screen-only kinds)."""
    rows = _synthetic_rows(2 * n, seed)[::2]  # the pet half
    return [(video, "drugs" if i < round(hidden_share * n) else "ok") for i, (video, _) in enumerate(rows)]


def test_shift_prior_moves_the_training_mix_prior_to_the_traffics(encoder):
    # Training over-represents hidden violations (half the pet videos), traffic has few (10%).
    train = _synthetic_rows(60, 3) + _pet_rows(60, 5, hidden_share=0.5)
    val = _synthetic_rows(40, 4) + _pet_rows(80, 6, hidden_share=0.1)
    X_train, X_val, y_val = featurize_rows(_videos(train), encoder), featurize_rows(_videos(val), encoder), _labels(val)
    model = BaselineClassifier(BaselineConfig(C=0.01)).fit(X_train, _labels(train))
    pets = featurize_rows(_videos(_pet_rows(40, 7, hidden_share=0.0)), encoder)
    drugs = featurize_rows([video for video, label in _synthetic_rows(20, 8) if label == "drugs"], encoder)

    def p_violation_on_pets() -> float:
        return float(1 - model.predict_proba(pets)[:, 0].mean())

    assert p_violation_on_pets() > 0.3
    # The default: temperatures only, which do not get to the traffic's rate.
    model.calibrate(X_val, y_val)
    assert model.violation_bias_ == 0.0 and p_violation_on_pets() > 0.15
    temperature_only_nll = model.calibration_["nll_after"]

    model.calibrate(X_val, y_val, shift_prior=True)
    assert model.violation_bias_ < 0 and model.calibration_["violation_bias"] == model.violation_bias_
    assert p_violation_on_pets() < 0.15  # near the traffic's 10 %
    assert model.calibration_["nll_after"] < temperature_only_nll - 0.05
    assert model.predict_proba(drugs)[:, 0].max() < 0.5  # what the caption shows is still called a violation

    configured = BaselineClassifier(BaselineConfig(C=0.01, shift_prior=True)).fit(X_train, _labels(train))
    assert configured.calibrate(X_val, y_val).violation_bias_ == pytest.approx(model.violation_bias_)


def test_save_load_gives_identical_probabilities(trained, tmp_path):
    model, test = trained
    X = featurize_rows(_videos(test[:10]), model.encoder)
    model.save(tmp_path / "baseline")
    loaded = BaselineClassifier.load(tmp_path / "baseline")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.temperature_ == model.temperature_
    assert loaded.violation_bias_ == model.violation_bias_
    assert loaded.category_temperature_ == model.category_temperature_
    meta = json.loads((tmp_path / "baseline" / "baseline.json").read_text())
    assert meta["labels"] == ["ok", "scam", "drugs", "weapons"] and meta["feature_version"] == "cheap-v4-all-text"
    assert loaded.config.policy_prior == model.config.policy_prior  # the prototypes travel with the model


def test_load_refuses_other_feature_versions(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path)
    meta = json.loads((tmp_path / "baseline.json").read_text())
    meta["feature_version"] = "cheap-v0"
    (tmp_path / "baseline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="retrain"):
        BaselineClassifier.load(tmp_path)


GUNS = ["pistol", "rifle", "ammo", "glock", "ar-15"]


def _three_label_rows(n, seed, category_noise=0.0):
    """Cat captions (ok), pill captions (drugs) and gun captions (weapons); with category_noise,
    that share of the violating rows swap drugs <-> weapons, so "which violation" is unsure
    while "violation or not" stays certain."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            caption, label = f"my {rng.choice(PETS)} {rng.choice(PET_ACTS)}", "ok"
        else:
            goods, label = (DRUGS, "drugs") if kind == 1 else (GUNS, "weapons")
            caption = f"{rng.choice(DRUG_VERBS)} {rng.choice(goods)} {rng.choice(DRUG_TAILS)}"
            if rng.random() < category_noise:
                label = "weapons" if label == "drugs" else "drugs"
        rows.append((_video(caption), label))
    return rows


def test_two_head_keeps_category_doubt_out_of_the_ok_probability(encoder):
    train, val = _three_label_rows(90, 7), _three_label_rows(90, 8, category_noise=0.4)
    config = BaselineConfig(C=100.0, category_C=100.0)  # weak L2: both heads start overconfident
    model = BaselineClassifier(config).fit(featurize_rows(_videos(train), encoder), _labels(train))
    model.calibrate(featurize_rows(_videos(val), encoder), _labels(val))
    assert model.category_temperature_ > 2.0  # drugs vs weapons is a coin flip on val: flattened

    X_violating = featurize_rows([video for video, label in _three_label_rows(30, 9) if label != "ok"], encoder)
    probs = model.predict_proba(X_violating)  # (M, 4): ok, scam, drugs, weapons
    assert probs[:, 0].max() < 0.05  # still sure these violate: the router need not spend the MLLM on "ok or not"
    assert probs[:, 2:].min() > 0.15  # but unsure which violation
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[:, 1].max() < 1e-6  # scam never seen in training: a floor, not a guess


def test_two_head_search_finds_the_same_best_as_trying_every_combination(encoder):
    """train_baseline searches C and category_C separately (the validation NLL splits into one
    part per head); that must land where trying the whole product lands."""
    train, val = _three_label_rows(90, 11, category_noise=0.2), _three_label_rows(60, 12, category_noise=0.3)
    X_train, X_val = featurize_rows(_videos(train), encoder), featurize_rows(_videos(val), encoder)
    config = BaselineConfig(text_encoder=ENCODER_CONFIG, C_grid=(0.001, 0.03, 1.0), category_C_grid=(0.001, 0.1, 10.0),
                            prior_weight_grid=(1.0, 10.0))
    searched = train_baseline(train, val, config, progress=False)

    nll = {}
    for C, category_C, weight in itertools.product(config.C_grid, config.category_C_grid, config.prior_weight_grid):
        model = BaselineClassifier(replace(config, C=C, category_C=category_C, prior_weight=weight))
        model.fit(X_train, _labels(train)).calibrate(X_val, _labels(val))
        nll[C, category_C, weight] = model.calibration_["nll_after"]
    best = min(nll, key=nll.get)
    assert (searched.config.C, searched.config.category_C, searched.config.prior_weight) == best
    assert searched.calibration_["nll_after"] == pytest.approx(nll[best])


def test_two_head_needs_ok_and_violating_rows():
    X = np.zeros((4, FEATURE_DIM))
    with pytest.raises(ValueError, match="both"):
        BaselineClassifier().fit(X, ["drugs", "weapons", "drugs", "weapons"])


def test_fit_rejects_unknown_labels_and_unfitted_use():
    X = np.zeros((4, FEATURE_DIM))
    with pytest.raises(ValueError):
        BaselineClassifier().fit(X, ["ok", "spam", "ok", "drugs"])
    with pytest.raises(RuntimeError):
        BaselineClassifier().predict_proba(X)
    with pytest.raises(ValueError):
        BaselineConfig(estimator="svm")


def test_mlp_estimator_trains(encoder):
    rows = _synthetic_rows(120, 5)
    model = BaselineClassifier(BaselineConfig(estimator="mlp", max_iter=300))
    model.fit(featurize_rows(_videos(rows), encoder), _labels(rows))
    test = _synthetic_rows(40, 6)
    assert np.mean(model.predict(featurize_rows(_videos(test), encoder)) == np.array(_labels(test))) > 0.9


def test_cheap_features_layout_without_media(encoder):
    row = cheap_features(_video("my cat"), encoder)
    assert row.shape == (FEATURE_DIM,) and row.dtype == np.float32
    np.testing.assert_allclose(row[:EMBEDDING_DIM], encoder.encode(["my cat"])[0], atol=1e-6)
    assert not row[EMBEDDING_DIM:MISSING_FROM].any()  # no speech, no text, no frames, no audio: zeros
    assert row[MISSING_FROM:MEDIA_END].tolist() == [0.0, 1.0, 1.0]  # ... flagged: transcript and on-screen text absent
    assert 3 * EMBEDDING_DIM + VISUAL_DIM + AUDIO_DIM + 3 + 4 * PRIOR_DIM == FEATURE_DIM


def test_each_text_modality_has_its_own_columns(encoder):
    video = _video("", speech="you can order percs from me tonight", onscreen="LINK IN BIO")
    row = cheap_features(video, encoder)
    assert not row[:EMBEDDING_DIM].any() and row[MISSING_FROM] == 1.0  # no caption: missing, flagged
    np.testing.assert_allclose(row[EMBEDDING_DIM:2 * EMBEDDING_DIM],
                               encoder.encode(["you can order percs from me tonight"])[0], atol=1e-6)
    np.testing.assert_allclose(row[2 * EMBEDDING_DIM:STATS_FROM], encoder.encode(["LINK IN BIO"])[0], atol=1e-6)
    assert row[MISSING_FROM + 1] == row[MISSING_FROM + 2] == 0.0


def test_a_benign_caption_cannot_hide_a_spoken_offer_from_the_prior(encoder):
    """The prior of each modality, and their max, see an offer in the speech whatever the caption says."""
    scam, drugs, weapons = range(3)
    spoken = cheap_features(_video("my cat sleeping on the sofa", speech="selling xanax bars, no script needed"),
                            encoder)
    silent = cheap_features(_video("my cat sleeping on the sofa"), encoder)
    caption_prior, speech_prior, _, max_prior = spoken[MEDIA_END:].reshape(4, PRIOR_DIM)
    assert int(speech_prior[:3].argmax()) == drugs
    np.testing.assert_allclose(caption_prior, silent[MEDIA_END:MEDIA_END + PRIOR_DIM])  # the caption's own stays
    assert max_prior[drugs] == speech_prior[drugs] > silent[-PRIOR_DIM:][drugs] + 0.2


def test_baseline_learns_a_violation_that_only_the_speech_or_the_screen_shows(encoder):
    """Pet captions over drug offers in the speech or on screen: stage 1 must flag those itself."""
    rng = np.random.default_rng(13)

    def rows(n):
        out = []
        for i in range(n):
            caption = f"my {rng.choice(PETS)} {rng.choice(PET_ACTS)}"
            offer = f"{rng.choice(DRUG_VERBS)} {rng.choice(DRUGS)} {rng.choice(DRUG_TAILS)}"
            chat = f"look at my {rng.choice(PETS)}"
            if i % 4 == 0:
                out.append((_video(caption, speech=offer), "drugs"))
            elif i % 4 == 1:
                out.append((_video(caption, speech=chat, onscreen=offer.upper()), "drugs"))
            else:
                out.append((_video(caption, speech=chat), "ok"))
        return out

    train, val, test = rows(80), rows(40), rows(40)
    model = train_baseline(train, val, BaselineConfig(text_encoder=ENCODER_CONFIG), progress=False)
    predicted = model.predict(featurize_rows(_videos(test), encoder))
    assert np.mean(predicted == np.array(_labels(test))) >= 0.9


def _caption_offer_rows(rng, n):
    """Offers only ever in the caption (over small talk), in one video of three; pet videos otherwise."""
    rows = []
    for i in range(n):
        chat = f"look at my {rng.choice(PETS)}"
        if i % 3 == 0:
            offer = f"{rng.choice(DRUG_VERBS)} {rng.choice(DRUGS)} {rng.choice(DRUG_TAILS)}"
            rows.append((_video(offer, speech=chat), "drugs"))
        else:
            rows.append((_video(f"my {rng.choice(PETS)} {rng.choice(PET_ACTS)}", speech=chat), "ok"))
    return rows


def test_the_shared_text_scorer_carries_what_captions_teach_to_speech_and_screen(encoder):
    """Trained on caption offers only, the scorer reads a spoken or on-screen offer the same way:
    its p(violation) for that modality is high, small talk's low, and a missing modality's 0."""
    rng = np.random.default_rng(5)
    train = _caption_offer_rows(rng, 60)
    X = featurize_rows(_videos(train), encoder)
    scorer = ModalityTextScorer(labels=("ok", "scam", "drugs", "weapons")).fit(X, _labels(train))
    assert scorer.out_of_fold_.shape == (60, scorer.n_columns) == (60, 3 + 3 + 1)
    spoken = _video("my cat sleeping on the sofa", speech="selling oxy tonight, dm me")
    shown = _video("my dog at the vet", speech="look at my dog", onscreen="CHEAP PERCS FAST DELIVERY")
    chat = _video("my parrot eating breakfast", speech="look at my parrot")
    columns = scorer.transform(featurize_rows([spoken, shown, chat], encoder))  # (3, 7)
    caption, speech, onscreen = range(3)
    drugs_best, best = 3 + 1, 6
    small_talk = columns[2, speech]
    assert small_talk < 0.15
    assert columns[0, speech] > small_talk + 0.4 and columns[0, caption] < 0.15
    assert columns[1, onscreen] > small_talk + 0.4
    assert columns[2, onscreen] == 0.0  # no on-screen text: 0, not a score
    assert columns[0, best] == columns[0, speech] and columns[0, drugs_best] > 0.5


def test_the_small_talk_beside_an_offer_is_not_taught_as_a_violation(encoder):
    """Every offer video also says "look at my <pet>". Labelled with its video's label, that small
    talk scores about the share of offer videos; fit multiple-instance, it scores as ok, so a
    video of small talk alone no longer looks a third of the way to a violation."""
    rng = np.random.default_rng(5)
    train = _caption_offer_rows(rng, 60)
    X = featurize_rows(_videos(train), encoder)
    chat = featurize_rows([_video("my parrot eating breakfast", speech="look at my parrot")], encoder)
    speech = 1
    labels = ("ok", "scam", "drugs", "weapons")
    video_labels = ModalityTextScorer(labels=labels, rounds=0).fit(X, _labels(train)).transform(chat)[0, speech]
    instances = ModalityTextScorer(labels=labels, rounds=2).fit(X, _labels(train)).transform(chat)[0, speech]
    assert 0.15 < video_labels < 0.5
    assert instances < video_labels / 2


def test_each_violating_video_keeps_the_one_text_most_like_its_label():
    scorer = ModalityTextScorer(labels=("ok", "scam", "drugs", "weapons"))
    videos = np.array([0, 0, 1, 1, 1, 2])
    labels = np.array(["drugs", "drugs", "ok", "ok", "ok", "scam"], dtype=object)
    probs = np.array([[0.6, 0.1, 0.2, 0.1],  # video 0's caption: small talk
                      [0.1, 0.1, 0.7, 0.1],  # video 0's speech: the offer
                      [0.9, 0.0, 0.1, 0.0], [0.5, 0.2, 0.2, 0.1], [0.8, 0.1, 0.1, 0.0],
                      [0.3, 0.6, 0.1, 0.0]])
    assert scorer._instances(probs, labels, videos).tolist() == [False, True, True, True, True, True]


def test_the_heads_train_on_out_of_fold_scores_and_save_the_scorer(encoder, tmp_path):
    rng = np.random.default_rng(6)
    train, val = _caption_offer_rows(rng, 60), _caption_offer_rows(rng, 20)
    config = BaselineConfig(text_encoder=ENCODER_CONFIG, C_grid=(), category_C_grid=(), prior_weight_grid=())
    model = train_baseline(train, val, config, progress=False)
    X = featurize_rows(_videos(train), encoder)
    # out of fold: the scores the heads trained on are not the full model's own (which saw every row)
    assert not np.allclose(model.text_scorer_.out_of_fold_, model.text_scorer_.transform(X))
    model.save(tmp_path / "m")
    reloaded = BaselineClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(reloaded.predict_proba(X), model.predict_proba(X))

    # a model without the scorer (off, or saved before it existed) saves none and loads as it was
    plain = train_baseline(train, val, replace(config, text_scorer_C=0.0), progress=False)
    plain.save(tmp_path / "plain")
    assert plain.text_scorer_ is None and not (tmp_path / "plain" / "text_scorer.joblib").exists()
    np.testing.assert_allclose(BaselineClassifier.load(tmp_path / "plain").predict_proba(X), plain.predict_proba(X))


def test_without_text_in_videos_of_two_labels_stage_1_trains_without_the_scorer(encoder):
    """Uploads need no caption, and may have no speech or on-screen text: stage 1 still trains."""
    rng = np.random.default_rng(7)
    rows = [(_video("", audio=rng.normal(0, 0.05 + 0.2 * (i % 2), SAMPLE_RATE // 4).astype(np.float32),
                    speech="look at my cat" if i % 2 == 0 else ""), "ok" if i % 2 == 0 else "drugs")
            for i in range(20)]
    model = train_baseline(rows, [], BaselineConfig(text_encoder=ENCODER_CONFIG), progress=False)
    assert model.text_scorer_ is None  # every text there belongs to an ok video
    assert model.predict_proba(featurize_rows(_videos(rows), encoder)).shape == (20, 4)


def test_caption_prior_columns_point_at_the_label_a_new_phrasing_means(encoder):
    """The prior columns score the caption against the policy's own label descriptions, so a
    promotion in words no training caption used still lands on its label."""
    scam, drugs, weapons = range(3)
    rows = {
        caption: cheap_features(_video(caption), encoder)[MEDIA_END:MEDIA_END + PRIOR_DIM]
        for caption in ("selling xanax bars, no script needed", "double your bitcoin in a day", "ak for sale, 200 rounds")
    }
    assert [int(prior[:3].argmax()) for prior in rows.values()] == [drugs, scam, weapons]
    benign = cheap_features(_video("my cat sleeping on the sofa"), encoder)[MEDIA_END:MEDIA_END + PRIOR_DIM]
    assert all(prior[:3].max() > benign[:3].max() + 0.2 for prior in rows.values())


def test_visual_features_see_edges_and_motion():
    flat = np.full((72, 128, 3), 120, dtype=np.uint8)
    stripes = flat.copy()
    stripes[::4] = 255  # thin bright lines, like rows of on-screen text
    still = visual_features([Frame(0.0, flat), Frame(1.0, flat)])
    texty = visual_features([Frame(0.0, stripes), Frame(1.0, flat)])
    edge_density, motion, has_video = 16, -2, -1
    assert still[edge_density] == 0.0 and texty[edge_density] > 0.1
    assert still[motion] == 0.0 and texty[motion] > 0.01
    assert still[has_video] == texty[has_video] == 1.0
    with pytest.raises(ValueError):
        visual_features([np.zeros((10, 10), dtype=np.uint8)])


def test_visual_features_see_text_in_the_lower_band_only():
    frame = np.full((120, 160, 3), 90, dtype=np.uint8)
    subtitled, banner_on_top = frame.copy(), frame.copy()
    subtitled[84:112:3, 10:150] = 255  # bright strokes in the lower band, where text is burnt in
    banner_on_top[8:36:3, 10:150] = 255  # the same strokes near the top
    band_density, texty_frames = BAND_DENSITY_INDEX, VISUAL_DIM - 3
    with_text = visual_features([Frame(0.0, subtitled), Frame(1.0, frame)])
    on_top = visual_features([Frame(0.0, banner_on_top), Frame(1.0, banner_on_top)])
    assert with_text[band_density] > 0.05 and with_text[texty_frames] == 0.5
    assert on_top[band_density] == 0.0 and on_top[texty_frames] == 0.0


def test_audio_features_tell_speechlike_bursts_from_silence():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    # A 1 kHz tone switched on and off 4 times a second: loud bursts in the speech band.
    bursts = (0.3 * np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    quiet = (0.0005 * rng.normal(size=len(t))).astype(np.float32)
    has_audio, log_duration, loudness, zcr, centroid, speech, band = range(AUDIO_DIM)
    a, q = audio_features(bursts), audio_features(quiet)
    assert a[has_audio] == q[has_audio] == 1.0
    assert a[log_duration] == pytest.approx(math.log1p(3.0))
    assert a[loudness] > q[loudness]
    assert 0.3 < a[speech] < 0.7 and q[speech] == 0.0
    assert a[centroid] * SAMPLE_RATE / 2 == pytest.approx(1000, rel=0.05)
    assert a[band] > 0.9


def test_prior_weight_scales_only_the_policy_prior_columns():
    from inference.baseline import PriorWeight

    X = np.ones((2, 10))
    out = PriorWeight(n_columns=3, weight=4.0).fit(X).transform(X)
    assert out[:, :7].tolist() == np.ones((2, 7)).tolist() and out[:, 7:].tolist() == np.full((2, 3), 4.0).tolist()
    assert X.tolist() == np.ones((2, 10)).tolist()  # the input is left alone
