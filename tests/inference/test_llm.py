"""Stage 2 as a decoder LLM: the prompt, label scores from the LM, gates, the prefix cache,
save/reload, the Whisper check and the written explanation. A tiny random Qwen2 stands in for
the real model; it loads through the same path."""

import contextlib
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.int8 import Int8Linear  # noqa: E402
from inference.llm import (  # noqa: E402
    MODALITIES,
    LLMClassifier,
    LLMConfig,
    backbone_dtype,
    evidence_pieces,
    load_stage2,
    prompt_lookup_draft,
    render_evidence,
)
from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures  # noqa: E402

torch.set_num_threads(1)
INFO = MediaInfo(container="mp4", duration_s=4.0, size_bytes=1000, has_video=True, has_audio=True)


def config(tiny_qwen2_dir, whisper_checkpoint, **overrides) -> LLMConfig:
    values = dict(audio_checkpoint=whisper_checkpoint, backbone_path=tiny_qwen2_dir, dtype="float32", n_frames=3,
                  image_size=32, vision_d_model=32, vision_layers=1, vision_heads=2, max_evidence_tokens=96)
    values.update(overrides)
    return LLMConfig(**values)


def video(caption="my day at the park", speech=("hello friends", "buy cheap pills now"), onscreen="sunday vlog",
          frames=3, audio_s=1.0, seed=0) -> VideoFeatures:  # fmt: skip
    rng = np.random.default_rng(seed)
    return VideoFeatures(
        info=INFO, caption=caption,
        frames=[Frame(t_s=float(i), image=rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for i in range(frames)],
        audio=(0.1 * rng.standard_normal(int(audio_s * SAMPLE_RATE))).astype(np.float32) if audio_s else None,
        transcript=[TranscriptSegment(2.0 * i, 2.0 * i + 2.0, t) for i, t in enumerate(speech)],
        ocr=[OcrLine(t_s=1.5, text=onscreen, score=0.9, box=(0, 0, 1, 1))] if onscreen else [],
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(tiny_qwen2_dir, whisper_checkpoint):
    torch.manual_seed(0)
    return LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint)).eval()


def perturb(model: LLMClassifier, seed: int = 1, scale: float = 0.3) -> None:
    """Move LoRA, gates and heads away from their initial values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=generator))
    model.reset_prefix_cache()


def test_prompt_holds_the_policy_the_examples_and_the_evidence(model):
    prefix = model.tokenizer.decode(model.prefix_ids)
    assert model.config.policy_text in prefix
    assert "Label: drugs" in prefix  # an example answer
    inputs = model.features_to_inputs([video(caption="free crypto")])
    suffix = model.tokenizer.decode(inputs.suffix_ids[0][inputs.suffix_mask[0]])
    assert "Caption: free crypto" in suffix and "[2.0-4.0 s] buy cheap pills now" in suffix
    assert "[1.5 s] sunday vlog" in suffix and suffix.rstrip().endswith("Label:")
    assert "Frames: frame frame frame" in suffix  # each frame's tokens are added onto its word
    assert int((inputs.frame_slots[0] >= 0).sum()) == 3


def test_missing_modalities_say_none(model):
    features = video(caption="", speech=(), onscreen="", frames=0, audio_s=0)
    assert render_evidence(evidence_pieces(features)) == "Caption: (none)\nSpeech: (none)\nOn-screen text: (none)"
    inputs = model.features_to_inputs([features])
    assert "Frames: (none)" in model.tokenizer.decode(inputs.suffix_ids[0])
    out = model.predict([features])[0]
    assert abs(sum(out.probabilities.values()) - 1.0) < 1e-5
    assert out.modality_contributions == dict.fromkeys(MODALITIES, 0.0)


def test_scores_are_the_lm_logits_of_the_label_words(model):
    inputs = model.features_to_inputs([video()])
    with torch.no_grad():
        logits = model(inputs)  # (1, K)
        ids = torch.tensor([model.prefix_ids + inputs.suffix_ids[0].tolist()])
        full = model.language_model(input_ids=ids).logits[0, -1]  # (V,)
    torch.testing.assert_close(logits[0], full[model.label_token_ids].float(), atol=1e-4, rtol=1e-4)


def test_untrained_gates_add_nothing(model):
    """At gate 0 the frames and the audio change no score: the model is the prompted LLM."""
    a = model.features_to_inputs([video(seed=0)])
    b = model.features_to_inputs([video(seed=5)])  # other pixels, other audio, same text
    with torch.no_grad():
        torch.testing.assert_close(model(a), model(b))
    out = model.predict([video()])[0]
    assert out.modality_contributions["visual"] == 0.0 and out.modality_contributions["audio"] == 0.0
    assert model.gate_openings() == {"visual": 0.0, "audio": 0.0}


def test_trained_gates_let_frames_and_audio_in(tiny_qwen2_dir, whisper_checkpoint):
    """Once the gates open, frame (and early audio) tokens land on their placeholders and nowhere
    else, and late audio moves the label scores directly. (How much the label position attends to
    a placeholder is up to training: in this random model it is about nothing.)"""
    for fusion in ("late", "early"):
        torch.manual_seed(0)
        model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, fusion=fusion, examples=())).eval()
        perturb(model, scale=1.0)
        inputs = model.features_to_inputs([video()])
        with torch.no_grad():
            added = model.embed_suffix(inputs) - model.language_model.get_input_embeddings()(inputs.suffix_ids)
        placeholders = (inputs.frame_slots[0] >= 0) | (inputs.audio_slots[0] >= 0)  # (L,)
        assert torch.equal(added.abs().sum(-1)[0] > 0, placeholders), fusion
        assert int((inputs.audio_slots[0] >= 0).sum()) == (model.config.n_audio_tokens if fusion == "early" else 0)
        if fusion == "late":
            silent = model.features_to_inputs([video(audio_s=0)])
            with torch.no_grad():
                assert not torch.allclose(model(inputs), model(silent))
            assert model.predict([video()])[0].modality_contributions["audio"] != 0.0


def test_contributions_are_what_removing_each_modality_does(tiny_qwen2_dir, whisper_checkpoint):
    """Each modality's contribution is p(violation) of the video minus p(violation) of the same video
    with that modality removed, one pass each. Late-fused audio is taken off the full pass's logits
    instead of costing a pass: the same number."""
    audio = {}
    for fusion in ("late", "early"):
        torch.manual_seed(0)
        model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, fusion=fusion, examples=())).eval()
        perturb(model, scale=1.0)
        prepared = model.prepare([video()])[0]
        out = model.predict_prepared([prepared])[0]
        for modality in MODALITIES:
            inputs = model.collate([prepared, replace(prepared, dropped=frozenset({modality}))])
            with torch.no_grad():
                p_violation = model.p_violation(torch.softmax(model(inputs), -1))  # (2,)
            assert out.modality_contributions[modality] == pytest.approx(
                float(p_violation[0] - p_violation[1]), abs=1e-5), (fusion, modality)
        audio[fusion] = out.modality_contributions["audio"]
    assert audio["late"] != 0.0  # late audio moves the scores (early audio: as far as training taught it)


def test_cached_prefix_equals_recomputing_it(model):
    inputs = model.features_to_inputs([video(), video(caption="x", speech=())])
    with torch.no_grad():
        cached = model(inputs)
        model.reset_prefix_cache()
        fresh = model(inputs)
    with torch.enable_grad():  # the training path recomputes the prefix every call
        recomputed = model(inputs).detach()
    torch.testing.assert_close(cached, fresh)
    torch.testing.assert_close(cached, recomputed, atol=1e-5, rtol=1e-5)


def test_a_batch_scores_like_each_video_alone(model):
    videos = [video(), video(caption="another one", speech=("short",), onscreen="")]
    together = model.probabilities(model.features_to_inputs(videos))
    alone = torch.cat([model.probabilities(model.features_to_inputs([v])) for v in videos])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_many_videos_are_scored_in_their_order_whatever_their_batches(model):
    """label_logits batches videos by length; each row is still its own video's."""
    videos = [video(caption="a much longer caption than the others, " * 3), video(caption="short", onscreen=""),
              video(speech=("one", "two", "three")), video(caption="mid length caption here", speech=())]
    alone = torch.cat([model(model.features_to_inputs([v])) for v in videos])
    torch.testing.assert_close(model.label_logits(videos, batch_size=2), alone, atol=1e-5, rtol=1e-4)


def test_evidence_is_cut_to_the_budget(model):
    long = video(speech=("word " * 200,), caption="short caption")
    prepared = model.prepare([long])[0]
    assert sum(len(ids) for ids in prepared.text_ids.values()) <= model.config.max_evidence_tokens
    assert prepared.text_ids["caption"] == model._ids("short caption")  # short ones keep everything


def test_save_and_reload_give_the_same_outputs(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint)).eval()
    perturb(model)
    features = [video(), video(caption="free crypto", seed=3)]
    before = model.probabilities(model.features_to_inputs(features))
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["architecture"] == "llm-classifier" and saved["lora_r"] == 32 and saved["lora_alpha"] == 64
    assert len(saved["audio_whisper_sha256"]) == 64
    reloaded = load_stage2(tmp_path / "m", audio_checkpoint=whisper_checkpoint)
    assert isinstance(reloaded, LLMClassifier)
    torch.testing.assert_close(reloaded.probabilities(reloaded.features_to_inputs(features)), before)


def test_a_different_whisper_checkpoint_is_refused(model, tmp_path):
    model.save(tmp_path / "m")
    other = tmp_path / "other.pt"
    other.write_bytes(open(model.config.audio_checkpoint, "rb").read() + b"\0")
    with pytest.raises(ValueError, match="Whisper checkpoint"):
        LLMClassifier.load(tmp_path / "m", audio_checkpoint=str(other))


def test_lora_and_gates_receive_gradients(model):
    model.train()
    try:
        inputs = model.features_to_inputs([video(), video(caption="guns for sale", seed=2)])
        loss = F.cross_entropy(model(inputs), torch.tensor([0, 3]))
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert any("lora_B" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
        assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n
                   and n.startswith("backbone"))  # the LLM itself stays frozen
        assert grads["visual_gate"] is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_explanation_is_written_and_quotes_only_the_evidence(model):
    features = video(caption="weekend plans", speech=("hello friends", "buy cheap pills now"), onscreen="dm me")
    out = model.predict([features], explain=True)[0]
    text = out.rationale.explanation
    assert text.strip()
    assert len(model._ids(text)) < 200  # bounded
    evidence = {(s.text, s.start_s) for s in [*features.transcript]} | {(features.caption, None)} | {
        (line.text, line.t_s) for line in features.ocr}
    quoted = [q for q in __import__("re").findall(r'"([^"]+)"', text)]
    for span in out.rationale.spans:
        assert (span.text, span.start_s) in evidence
        assert f'"{span.text}"' in text
    assert set(quoted) <= {t for t, _ in evidence}


def test_a_violation_s_reason_opens_with_the_text_field_that_carries_it(model):
    """The reason names the field whose removal lowers p(violation) most, not whichever field a
    prompt example happened to name."""
    assert model.opening("drugs", {"caption": 0.01, "speech": 0.30, "onscreen": -0.1, "visual": 0.5}) == "The speaker"
    assert model.opening("scam", {"caption": 0.2, "speech": 0.0, "onscreen": 0.25}) == "The on-screen text"
    assert model.opening("ok", {"caption": 0.3}) == ""
    assert model.opening("drugs", {"caption": -0.1, "speech": 0.0, "onscreen": 0.0}) == ""
    prepared = model.prepare([video(caption="weekend plans", speech=("buy cheap pills now",), onscreen=None)])[0]
    text, _ = model.explain(prepared, "drugs", {"caption": 0.0, "speech": 0.4, "onscreen": 0.0})
    assert text.startswith("The speaker")


def test_the_explanation_continues_from_the_scoring_pass(tiny_qwen2_dir, whisper_checkpoint):
    """predict(explain=True) writes from the keys and values of its own scoring pass: the same
    words as reading the prompt again, also when a variant without a modality is the longest row
    (a one-word caption replaced by "(none)")."""
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, explain_max_new_tokens=12)).eval()
    perturb(model, seed=3)
    for features in (video(), video(caption="hi", speech=("buy cheap pills now",), onscreen=None)):
        prepared = model.prepare([features])[0]
        out = model.predict_prepared([prepared], explain=True)[0]
        afresh = model.generate_reason(prepared, out.label, opening=model.opening(out.label, out.modality_contributions))
        assert afresh
        assert out.rationale.explanation.startswith(afresh)


def test_prompt_lookup_drafts_what_followed_the_latest_earlier_match():
    assert prompt_lookup_draft([1, 2, 3, 4, 5, 9, 2, 3], max_draft=3) == [4, 5, 9]  # "2 3" occurred at 1
    assert prompt_lookup_draft([7, 1, 8, 1, 9, 1], max_draft=3) == [9, 1]  # the latest earlier "1"
    assert prompt_lookup_draft([5, 6, 7, 5, 6, 8, 5, 6], max_draft=1) == [8]  # "5 6" last seen before 8
    assert prompt_lookup_draft([1, 2, 3], max_draft=4) == []
    assert prompt_lookup_draft([1, 2, 1], max_draft=0) == []


def test_a_draft_saves_passes_and_keeps_greedy_decoding_s_reason(tiny_qwen2_dir, whisper_checkpoint, monkeypatch):
    """Prompt lookup only proposes: a draft greedy decoding agrees with is taken in one pass, a
    wrong token in it is thrown away with what follows, and the sentence is plain greedy's (in
    fp32, as here; bf16 rounding can flip a near-tie)."""
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, explain_max_new_tokens=12,
                                 explain_draft_tokens=0)).eval()
    perturb(model, seed=5)
    prepared = model.prepare([video()])[0]
    passes, written = [], []
    next_token_logits, reason_text = LLMClassifier._next_token_logits, LLMClassifier._reason_text
    monkeypatch.setattr(LLMClassifier, "_next_token_logits",
                        lambda self, *a, **k: passes.append(1) or next_token_logits(self, *a, **k))
    monkeypatch.setattr(LLMClassifier, "_reason_text",
                        lambda self, generated, opening: written.append(list(generated)) or reason_text(
                            self, generated, opening))
    greedy = model.generate_reason(prepared, "drugs")
    greedy_passes, greedy_ids = len(passes), written[-1]

    def draft_from(continuation):  # the lookup, replaced by one that knows (or misknows) the answer
        def draft(tokens, max_draft, max_ngram=3):
            done = len(tokens) - (len(model.prefix_ids) + len(model._suffix(prepared)[0])
                                  + len(model._ids(" drugs\nReason:")))
            return continuation[done: done + max_draft]
        return draft

    model.config = replace(model.config, explain_draft_tokens=8)
    for continuation, fewer in ((greedy_ids, True), (greedy_ids[:3] + [greedy_ids[3] + 1] + greedy_ids[4:], False)):
        monkeypatch.setattr("inference.llm.prompt_lookup_draft", draft_from(continuation))
        passes.clear()
        assert model.generate_reason(prepared, "drugs") == greedy
        assert len(passes) < greedy_passes or not fewer


def test_the_reason_is_what_the_lm_s_own_greedy_generate_writes(tiny_qwen2_dir, whisper_checkpoint, monkeypatch):
    """The cached prefix, the scoring pass's keys and values, the drafts and the LM head on 2-D rows
    change how the sentence is computed, not what it is: transformers' generate() over the whole
    prompt picks the same tokens (LoRA starts as a no-op and the gates at 0, so the LM reads plain text)."""
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, explain_max_new_tokens=12,
                                 explain_draft_tokens=4)).eval()
    written = []
    reason_text = LLMClassifier._reason_text
    monkeypatch.setattr(LLMClassifier, "_reason_text",
                        lambda self, generated, opening: written.append(list(generated)) or reason_text(
                            self, generated, opening))
    features = video()
    out = model.predict([features], explain=True)[0]
    opening = model.opening(out.label, out.modality_contributions)
    answer = f" {out.label}\nReason:" + (f" {opening}" if opening else "")
    prompt = model.prefix_ids + model._suffix(model.prepare([features])[0])[0] + model._ids(answer)
    assert written[-1], "the tiny model writes a word"
    ids = torch.tensor([prompt])  # (1, P)
    greedy = model.language_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                           max_new_tokens=len(written[-1]))[0, len(prompt):].tolist()
    assert written[-1] == greedy


def test_labels_must_start_with_distinct_tokens(tiny_qwen2_dir, whisper_checkpoint):
    with pytest.raises(ValueError, match="distinct"):
        LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, labels=("ok", "okay"), violating=("okay",),
                             examples=()))


def test_a_base_model_without_chat_template_gets_a_plain_prompt(tmp_path, whisper_checkpoint):
    from tiny_llm import save_tiny_qwen2

    folder = save_tiny_qwen2(tmp_path / "base", with_chat_template=False)
    model = LLMClassifier(config(str(folder), whisper_checkpoint, examples=())).eval()
    assert model.tokenizer.decode(model.prefix_ids).startswith("system: You moderate short videos under this policy:")
    assert model.predict([video()])[0].label in model.labels


def test_custom_policy_labels_and_text(tiny_qwen2_dir, whisper_checkpoint):
    cfg = config(tiny_qwen2_dir, whisper_checkpoint, labels=("ok", "drugs"), violating=("drugs",),
                 policy_text="Only drug sales break this policy.", examples=())
    model = LLMClassifier(cfg).eval()
    out = model.predict([video()])[0]
    assert set(out.probabilities) == {"ok", "drugs"}
    assert out.p_violation == pytest.approx(out.probabilities["drugs"], abs=1e-6)
    assert "Only drug sales" in model.tokenizer.decode(model.prefix_ids)
    assert replace(cfg, fusion="early").fusion == "early"


def test_the_label_bias_is_fit_to_labelled_videos_and_saved(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, examples=())).eval()
    videos = [video(caption=f"clip {i}", seed=i) for i in range(6)]
    before = model.probabilities(model.features_to_inputs(videos))
    bias = model.calibrate_label_bias(videos, ["drugs"] * 6)  # everything is "drugs" here
    after = model.probabilities(model.features_to_inputs(videos))
    drugs = model.labels.index("drugs")
    assert int(bias.argmax()) == drugs and bool((after[:, drugs] > before[:, drugs]).all())
    model.save(tmp_path / "m")
    reloaded = LLMClassifier.load(tmp_path / "m", audio_checkpoint=whisper_checkpoint)
    torch.testing.assert_close(reloaded.label_bias.detach(), model.label_bias.detach())


def test_the_prefix_is_computed_once_until_the_weights_change(model):
    model.predict([video()])
    cached = model._prefix_cache
    model.predict([video(seed=2)])  # predict calls eval(): the cache stays
    assert cached is not None and model._prefix_cache is cached
    model.train()  # the prefix is read by the pretrained model, which training never changes
    assert model._prefix_cache is cached
    model.eval()
    model.load_state_dict(model.trained_state_dict(), strict=False)
    assert model._prefix_cache is None


def prefix_keys(model: LLMClassifier, adapter: bool) -> torch.Tensor:
    ids = torch.tensor([model.prefix_ids])
    with torch.no_grad(), (contextlib.nullcontext() if adapter else model.backbone.disable_adapter()):
        return model.transformer(input_ids=ids, use_cache=True).past_key_values.layers[0].keys


def test_the_prefix_is_read_by_the_pretrained_model_unless_adapt_prefix(tiny_qwen2_dir, whisper_checkpoint):
    """Default: LoRA reads the videos' own tokens only, so the prefix's keys and values stay the
    pretrained model's and a training step need not recompute them; adapt_prefix puts LoRA on the
    prefix too, as models saved before the option were trained."""
    for adapt_prefix in (False, True):
        torch.manual_seed(0)
        model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, adapt_prefix=adapt_prefix)).eval()
        perturb(model, scale=1.0)
        model.predict([video()])
        expected = prefix_keys(model, adapter=adapt_prefix)
        assert not torch.allclose(prefix_keys(model, adapter=True), prefix_keys(model, adapter=False))
        torch.testing.assert_close(model._prefix_cache.layers[0].keys, expected)
        model.train()
        assert (model._prefix_cache is None) == adapt_prefix
        model.eval()


def test_a_model_saved_before_adapt_prefix_existed_loads_with_it_on(tiny_qwen2_dir, whisper_checkpoint):
    saved = config(tiny_qwen2_dir, whisper_checkpoint).to_dict()
    assert LLMConfig.from_dict(saved).adapt_prefix is False
    del saved["adapt_prefix"]
    assert LLMConfig.from_dict(saved).adapt_prefix is True


def test_an_explanation_never_carries_control_characters(model):
    # A tiny random model once wrote a NUL, which PostgreSQL refused to store with the verdict.
    ids = model._ids("sells pills\x00 now\x07")
    assert model._reason_text(ids, "") == "sells pills now"
    assert model._reason_text(ids, "The speaker") == "The speaker sells pills now"


def test_a_frame_costs_one_token_and_older_models_keep_reading_times(model, tiny_qwen2_dir, whisper_checkpoint):
    saved = config(tiny_qwen2_dir, whisper_checkpoint).to_dict()
    del saved["slot_layout"]
    older = LLMClassifier(LLMConfig.from_dict(saved)).eval()
    assert older.config.slot_layout == "times"
    features = [video(frames=3)]
    words, times = model.features_to_inputs(features), older.features_to_inputs(features)
    assert "Frames at: 0.0 s, 1.0 s, 2.0 s" in older.tokenizer.decode(times.suffix_ids[0])
    assert "Frames at: 0.0 s" in older.tokenizer.decode(older.prefix_ids)  # its examples too
    assert "Frames: frame frame frame" in model.tokenizer.decode(model.prefix_ids)
    # The words layout is the shorter prompt, and each frame still has exactly one slot.
    assert words.suffix_ids.shape[1] < times.suffix_ids.shape[1]
    assert int((words.frame_slots[0] >= 0).sum()) == int((times.frame_slots[0] >= 0).sum()) == 3
    with pytest.raises(ValueError, match="slot_layout"):
        config(tiny_qwen2_dir, whisper_checkpoint, slot_layout="pixels")


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, torch.float32), (True, False, torch.bfloat16),
                                                         (False, True, torch.bfloat16)])
def test_auto_dtype_is_bf16_only_where_the_cpu_computes_in_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert backbone_dtype("auto", "cpu") == expected
    assert backbone_dtype("float32", "cpu") == torch.float32  # a named dtype is kept
    assert backbone_dtype("bfloat16", "cpu") == torch.bfloat16


def test_the_backbone_loads_in_the_resolved_dtype(tiny_qwen2_dir, whisper_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, dtype="auto"))
    assert model.language_model.get_input_embeddings().weight.dtype == torch.float32
    assert model.config.dtype == "auto"  # saved as "auto": the machine that loads it decides


@pytest.mark.parametrize("dtype, drafts, expected", [("float32", None, 0), ("bfloat16", None, 4), ("float32", 8, 8)])
def test_explanations_are_drafted_only_where_a_pass_over_a_few_tokens_is_cheap(
        tiny_qwen2_dir, whisper_checkpoint, dtype, drafts, expected):
    """In fp32 on a CPU a draft costs more compute than the passes it saves (measured on an AVX2
    CPU); a configured draft length is kept as it is."""
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint, dtype=dtype, explain_draft_tokens=drafts))
    assert model.draft_tokens == expected
    assert LLMConfig.from_dict(model.config.to_dict()).explain_draft_tokens == drafts  # the machine decides


def test_int8_serving_scores_like_the_float_model_and_only_serves(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    torch.manual_seed(0)
    model = LLMClassifier(config(tiny_qwen2_dir, whisper_checkpoint)).eval()
    perturb(model)
    model.save(tmp_path / "m")
    features = [video(), video(caption="free crypto", speech=("double your coins",), seed=3)]
    expected = model.predict(features)
    served = load_stage2(tmp_path / "m", audio_checkpoint=whisper_checkpoint, cpu_int8=True)

    blocks = list(served.transformer.layers.named_modules())
    quantized = {name.split(".")[-2 if name.endswith("base_layer") else -1] for name, m in blocks
                 if isinstance(m, Int8Linear)}
    float_linears = {name.split(".")[-1] for name, m in blocks if isinstance(m, torch.nn.Linear) and "lora_" not in name}
    assert quantized == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"}
    assert float_linears == {"down_proj"}  # its inputs' outliers do not survive one int8 scale
    assert served.int8 and any("lora_" in name for name, _ in served.named_parameters())
    for want, got in zip(expected, served.predict(features, explain=True)):
        assert got.label == want.label
        assert got.probabilities == pytest.approx(want.probabilities, abs=0.02)
        assert got.modality_contributions == pytest.approx(want.modality_contributions, abs=0.02)
        assert got.rationale.explanation.strip()
    with pytest.raises(RuntimeError, match="only serves"):
        served.train()
    with pytest.raises(RuntimeError, match="only serves"):
        served.save(tmp_path / "again")
