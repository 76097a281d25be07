"""The stage-2 multimodal classifier: shapes, loaders, LoRA, save/reload, fusion, rationale."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.audio_encoder import AudioEncoderConfig, WhisperAudioEncoder  # noqa: E402
from inference.mllm import (  # noqa: E402
    MODALITIES,
    MLLMConfig,
    MultimodalClassifier,
    attention_projection_names,
    sample_frames,
    share_budget,
)
from inference.policy import LABELS  # noqa: E402
from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures  # noqa: E402
from inference.vision import VisionConfig, VisionTransformer  # noqa: E402

torch.set_num_threads(1)  # the machine is shared; more threads only wait on each other
INFO = MediaInfo(container="mp4", duration_s=4.0, size_bytes=1000, has_video=True, has_audio=True)


# ---------------------------------------------------------------------------------------
# fixtures


def small_config(whisper_checkpoint, **overrides) -> MLLMConfig:
    values = dict(
        audio_checkpoint=whisper_checkpoint, n_frames=3, image_size=32, vision_d_model=64,
        vision_layers=1, vision_heads=2, max_text_tokens=64, head_hidden=64,
    )  # fmt: skip
    values.update(overrides)
    return MLLMConfig(**values)


@pytest.fixture(scope="module")
def minilm_model(whisper_checkpoint):
    torch.manual_seed(0)
    return MultimodalClassifier(small_config(whisper_checkpoint)).eval()


@pytest.fixture(scope="module")
def tiny_decoder_dir(tmp_path_factory):
    """A random 2-layer Llama with its own byte-level BPE tokenizer, saved like a real checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["caption: speech: on-screen text: buy cheap pills now", "hello friends welcome back to my channel"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT with MiniLM's tokenizer: the encoder path, fast enough to train in a test."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from inference.text_encoder import default_minilm_dir

    config = BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=256,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_minilm_dir(), local_files_only=True).save_pretrained(folder)
    return str(folder)


def noise_frames(n: int, seed: int = 0, duration_s: float = 4.0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [
        Frame(t_s=round(i * duration_s / n, 3), image=rng.integers(0, 256, (40, 72, 3), dtype=np.uint8))
        for i in range(n)
    ]


def video(caption="my day at the park", speech=("hello friends", "nice weather today"), onscreen="sunday vlog",
          frames=4, audio_s=1.0, seed=0) -> VideoFeatures:  # fmt: skip
    rng = np.random.default_rng(seed)
    transcript = [TranscriptSegment(start_s=2.0 * i, end_s=2.0 * i + 2.0, text=t) for i, t in enumerate(speech)]
    return VideoFeatures(
        info=INFO,
        caption=caption,
        frames=noise_frames(frames, seed),
        audio=(0.1 * rng.standard_normal(int(audio_s * SAMPLE_RATE))).astype(np.float32) if audio_s else None,
        transcript=transcript,
        ocr=[OcrLine(t_s=1.5, text=onscreen, score=0.9, box=(0, 0, 10, 10))] if onscreen else [],
    )


# ---------------------------------------------------------------------------------------
# the parts


def test_vision_transformer_maps_frames_to_one_token_each():
    vit = VisionTransformer(VisionConfig(image_size=32, patch_size=8, d_model=48, n_layers=2, n_heads=4))
    frames = torch.randn(2, 5, 3, 32, 32)
    tokens = vit(frames)
    assert tokens.shape == (2, 5, 48)
    # each frame is encoded on its own: changing frame 0 leaves frame 1's token alone
    changed = frames.clone()
    changed[:, 0] = torch.randn(2, 3, 32, 32)
    out = vit(changed)
    assert not torch.allclose(out[:, 0], tokens[:, 0])
    assert torch.allclose(out[:, 1], tokens[:, 1], atol=1e-6)


def test_vision_config_rejects_image_size_not_divisible_by_patch():
    with pytest.raises(ValueError):
        VisionConfig(image_size=30, patch_size=8).n_patches


def test_audio_encoder_is_frozen_and_pools_only_real_audio(whisper_checkpoint):
    encoder = WhisperAudioEncoder(AudioEncoderConfig(whisper_checkpoint, n_tokens=4, full_window=True))
    assert all(not p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.encoder.training  # stays in eval mode

    one_second = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    out = encoder([one_second, None])
    assert out.tokens.shape == (2, 4, 32) and out.pooled.shape == (2, 32)
    assert out.present.tolist() == [True, False]
    assert torch.count_nonzero(out.tokens[1]) == 0 and torch.count_nonzero(out.pooled[1]) == 0

    # full window: the pooled vector is the mean of the first 50 states (1 s), not of all 1500
    import whisper

    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(one_second)))
    with torch.no_grad():
        states = encoder.encoder(mel[None])[0]  # (1500, 32)
    assert torch.allclose(out.pooled[0], states[:50].mean(0), atol=1e-5)
    assert not torch.allclose(out.pooled[0], states.mean(0), atol=1e-3)
    assert torch.allclose(out.tokens[0, 0], states[:13].mean(0), atol=1e-5)  # first window of 50/4 states

    # the cheaper real-length mode gives features of the same shape
    short = WhisperAudioEncoder(AudioEncoderConfig(whisper_checkpoint, n_tokens=4))([one_second])
    assert short.tokens.shape == (1, 4, 32) and bool(short.present[0])


def test_sample_frames_spreads_evenly_and_pads():
    frames = noise_frames(10, duration_s=10.0)
    pixels, mask, times = sample_frames(frames, 4, 32)
    assert pixels.shape == (4, 3, 32, 32) and mask.all()
    assert times == [0.0, 3.0, 6.0, 9.0]
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    pixels, mask, times = sample_frames(frames[:2], 4, 32)
    assert mask.tolist() == [True, True, False, False]
    assert torch.count_nonzero(pixels[2:]) == 0


def test_share_budget_keeps_short_segments_whole():
    assert share_budget([5, 100, 100], 65) == [5, 30, 30]
    assert share_budget([5, 10, 3], 100) == [5, 10, 3]
    assert sum(share_budget([50, 50, 50], 40)) <= 40


def test_text_units_mark_sources_times_and_respect_budget(minilm_model):
    units = minilm_model.text_units(video(speech=("hello friends", "buy pills")))
    prefixes = [u.text for u in units if not u.modality and u.text]
    assert prefixes == ["caption:", "speech:", "on-screen text:"]
    pills = next(u for u in units if u.text == "pills")
    assert (pills.modality, pills.start_s, pills.end_s) == ("speech", 2.0, 4.0)
    sunday = next(u for u in units if u.text == "sunday")
    assert (sunday.modality, sunday.start_s) == ("onscreen", 1.5)

    long = video(caption="word " * 300, speech=("talk " * 300,), onscreen="sign " * 300)
    ids, mask = minilm_model.text_batch([minilm_model.text_units(long)])
    assert mask.sum() <= minilm_model.config.max_text_tokens
    kept = minilm_model.text_units(long)
    assert {u.modality for u in kept if u.modality} == {"caption", "speech", "onscreen"}  # all get a share


# ---------------------------------------------------------------------------------------
# backbones and LoRA


def test_minilm_lora_targets_attention_and_only_lora_trains(minilm_model):
    assert minilm_model.lora_targets == (
        "attention.output.dense", "attention.self.key", "attention.self.query", "attention.self.value",
    )  # fmt: skip
    assert minilm_model.pooling == "mean" and not minilm_model.is_decoder
    trainable_backbone = [n for n, p in minilm_model.backbone.named_parameters() if p.requires_grad]
    assert trainable_backbone and all("lora_" in n for n in trainable_backbone)
    # 6 layers x 4 projections x r x (384 in + 384 out)
    r = minilm_model.config.lora_r
    assert sum(p.numel() for p in minilm_model.backbone.parameters() if p.requires_grad) == 6 * 4 * r * (384 + 384)
    assert minilm_model.parameter_counts()["lora"] == 6 * 4 * r * (384 + 384)
    # the parts trained from scratch train fully; the Whisper encoder never does
    assert all(p.requires_grad for p in minilm_model.vision.parameters())
    assert all(p.requires_grad for p in minilm_model.head.parameters())
    assert not any(p.requires_grad for p in minilm_model.audio_encoder.parameters())


def test_features_to_inputs_shapes(minilm_model):
    inputs = minilm_model.features_to_inputs([video(), video(frames=1, audio_s=0, onscreen="")])
    assert inputs.frames.shape == (2, 3, 3, 32, 32)
    assert inputs.frame_mask.tolist() == [[True, True, True], [True, False, False]]
    assert inputs.audio_tokens.shape == (2, 4, 32) and inputs.audio_pooled.shape == (2, 32)
    assert inputs.audio_present.tolist() == [True, False]
    assert inputs.text_ids.shape == inputs.text_mask.shape and inputs.text_ids.shape[0] == 2
    n_prior = minilm_model.policy_prior.n_features
    assert inputs.policy_prior.shape == (2, 3, n_prior + 1)  # caption, speech, on-screen text
    assert inputs.policy_prior[:, :, -1].tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]  # has-text flags
    assert not inputs.policy_prior[1, 2].any()  # no on-screen text: a zero row
    logits = minilm_model(inputs)
    assert logits.shape == (2, len(LABELS))


def test_policy_prior_reaches_the_head_and_leaves_with_its_modality(whisper_checkpoint, tiny_bert_dir):
    torch.manual_seed(0)
    model = MultimodalClassifier(small_config(whisper_checkpoint, backbone_path=tiny_bert_dir))
    _perturb_trainable(model)
    model.eval()
    promo = video(caption="my day at the park", speech=("hello friends", "got oxy and percs for sale, delivery tonight"))
    prepared = model.prepare([promo])[0]
    drugs = model.policy_prior.feature_names.index("drugs")
    speech_row = prepared.policy_prior[1]
    assert speech_row[drugs] > prepared.policy_prior[0, drugs] + 0.1  # the speech, not the caption, reads as drugs
    with torch.no_grad():
        with_prior = model(model.collate([prepared]))
        without = model(model.collate([replace(prepared, policy_prior=torch.zeros_like(prepared.policy_prior))]))
    assert not torch.allclose(with_prior, without, atol=1e-5)
    # removing the speech (a modality contribution) removes its prior row too, and only that one
    no_speech = model._variants(prepared, [])[1 + MODALITIES.index("speech")]
    assert not no_speech.policy_prior[1].any()
    assert torch.equal(no_speech.policy_prior[[0, 2]], prepared.policy_prior[[0, 2]])


def test_a_model_saved_before_the_policy_prior_loads_without_it(whisper_checkpoint, tiny_bert_dir):
    saved = small_config(whisper_checkpoint, backbone_path=tiny_bert_dir).to_dict()
    del saved["policy_prior"], saved["prior_hidden"]
    config = MLLMConfig.from_dict(saved)
    assert config.policy_prior is None
    model = MultimodalClassifier(config).eval()
    assert "prior_projector" not in model.trained_module_names()
    assert model.features_to_inputs([video()]).policy_prior.shape == (1, 3, 0)
    assert model(model.features_to_inputs([video()])).shape == (1, len(LABELS))


def test_tiny_random_decoder_goes_through_the_same_loader(tiny_decoder_dir, whisper_checkpoint):
    torch.manual_seed(0)
    model = MultimodalClassifier(small_config(whisper_checkpoint, backbone_path=tiny_decoder_dir, lora_r=4, lora_alpha=8))
    assert model.is_decoder and model.pooling == "last"
    assert model.lora_targets == ("self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj")
    assert model.lead_ids == (model.tokenizer.bos_token_id,)
    lora = sum(p.numel() for n, p in model.backbone.named_parameters() if p.requires_grad)
    # per layer: q 64->64, k 64->32, v 64->32, o 64->64 (4 heads, 2 kv heads); r=4
    assert lora == 2 * 4 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64))
    assert all("lora_" in n for n, p in model.backbone.named_parameters() if p.requires_grad)

    out = model.predict([video()], explain=True)[0]
    assert set(out.probabilities) == set(LABELS)
    assert abs(sum(out.probabilities.values()) - 1.0) < 1e-5
    assert isinstance(out.rationale.explanation, str)

    # last-token pooling: padding a shorter sequence in the batch does not change its output
    a, b = video(caption="short"), video(caption="a much longer caption " * 5)
    alone = model.probabilities(model.features_to_inputs([a]))
    batched = model.probabilities(model.features_to_inputs([a, b]))
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_attention_projection_names_need_attention_blocks():
    with pytest.raises(ValueError):
        attention_projection_names(torch.nn.Sequential(torch.nn.Linear(2, 2)))


# ---------------------------------------------------------------------------------------
# save / reload, fusion


def _perturb_trainable(model: MultimodalClassifier, seed: int = 1) -> None:
    """LoRA B starts at zero; make every trained weight non-trivial so a lost one shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))


@pytest.mark.parametrize("fusion", ["late", "early"])
def test_save_and_reload_give_identical_probabilities(whisper_checkpoint, tiny_bert_dir, tmp_path, fusion):
    torch.manual_seed(0)
    model = MultimodalClassifier(small_config(whisper_checkpoint, backbone_path=tiny_bert_dir, fusion=fusion))
    _perturb_trainable(model)
    model.eval()
    videos = [video(seed=1), video(caption="cheap pills", audio_s=0, seed=2)]
    before = model.predict(videos)
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "adapter", "modules.safetensors"}
    assert MLLMConfig.from_dict(json.loads((tmp_path / "m" / "config.json").read_text())) == model.config

    torch.manual_seed(123)  # a different random init for everything the folder must restore
    reloaded = MultimodalClassifier.load(tmp_path / "m")
    after = reloaded.predict(videos)
    for x, y in zip(before, after):
        for label in LABELS:
            assert x.probabilities[label] == pytest.approx(y.probabilities[label], abs=1e-6)
        assert x.modality_contributions == pytest.approx(y.modality_contributions, abs=1e-5)
    # and a fresh model (no adapter, new heads) is really different
    fresh = MultimodalClassifier(small_config(whisper_checkpoint, backbone_path=tiny_bert_dir, fusion=fusion)).eval()
    assert fresh.predict(videos)[0].probabilities != pytest.approx(before[0].probabilities, abs=1e-4)


def test_early_and_late_fusion_use_the_audio(whisper_checkpoint, tiny_bert_dir):
    for fusion in ("late", "early"):
        torch.manual_seed(0)
        model = MultimodalClassifier(small_config(whisper_checkpoint, backbone_path=tiny_bert_dir, fusion=fusion))
        _perturb_trainable(model)
        model.eval()
        inputs = model.features_to_inputs([video(audio_s=1.0, seed=3)])
        with torch.no_grad():
            with_audio = model(inputs)
            silent = model(replace(inputs, audio_present=torch.zeros(1, dtype=torch.bool)))
            # (a constant shift would vanish in the LayerNorm in front of the audio path)
            shift = torch.linspace(-1.0, 1.0, inputs.audio_pooled.shape[-1])
            other = model(replace(inputs, audio_pooled=inputs.audio_pooled + shift, audio_tokens=inputs.audio_tokens + shift))
        assert with_audio.shape == (1, len(LABELS))
        assert not torch.allclose(with_audio, silent, atol=1e-5), fusion
        assert not torch.allclose(with_audio, other, atol=1e-5), fusion
        if fusion == "early":
            assert model.audio_projector is not None and not hasattr(model, "audio_norm")


# ---------------------------------------------------------------------------------------
# contributions and rationale on a model trained to read the speech


SPEECH_OK = ["I cook pasta tonight", "we walk the dog", "I paint the fence", "we plant some roses"]
SPEECH_DRUGS = ["I sell pills cheap", "buy pills from me", "pills delivered tonight", "cheap pills for sale"]


def _speech_video(i: int, drugs: bool, frames: int = 3) -> VideoFeatures:
    second = (SPEECH_DRUGS if drugs else SPEECH_OK)[i % 4]
    return video(caption="my day at the park", speech=("hello friends welcome back", second), onscreen="sunday vlog",
                 frames=frames, audio_s=0, seed=0)  # fmt: skip  (same pixels: only speech differs)


@pytest.fixture(scope="module")
def speech_model(whisper_checkpoint):
    """The pretrained MiniLM backbone, trained a few steps on videos where only the second
    transcript segment (2.0 s - 4.0 s) separates drugs from ok. Frame counts vary (0-3), as in
    real uploads, so a video without frames is not new to the model."""
    torch.manual_seed(0)
    model = MultimodalClassifier(small_config(whisper_checkpoint, max_occlusion_units=16))
    items = [(_speech_video(i, drugs=i % 2 == 1, frames=(i // 2) % 4), "drugs" if i % 2 else "ok") for i in range(32)]
    prepared = model.prepare([v for v, _ in items])
    labels = torch.tensor([LABELS.index(label) for _, label in items])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(12):
        idx = torch.randperm(len(items))[:8]
        loss = F.cross_entropy(model(model.collate([prepared[i] for i in idx])), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_removing_the_only_signal_carrying_modality_moves_p_violation_most(speech_model):
    drugs, ok = speech_model.predict([_speech_video(5, drugs=True), _speech_video(4, drugs=False)])
    assert drugs.label == "drugs" and ok.label == "ok"
    assert drugs.p_violation > 0.8 and ok.p_violation < 0.2
    assert set(drugs.modality_contributions) == set(MODALITIES)
    top = max(drugs.modality_contributions, key=drugs.modality_contributions.get)
    assert top == "speech"
    assert drugs.modality_contributions["speech"] > 0.5
    others = [v for k, v in drugs.modality_contributions.items() if k != "speech"]
    assert max(abs(v) for v in others) < 0.5 * drugs.modality_contributions["speech"]


def test_rationale_points_at_the_words_and_times_that_carry_the_label(speech_model):
    out = speech_model.predict([_speech_video(5, drugs=True)])[0]
    assert out.rationale.label == "drugs"
    assert out.rationale.spans, "a confident prediction has supporting evidence"
    best = out.rationale.spans[0]
    assert best.modality == "speech"
    assert (best.start_s, best.end_s) == (2.0, 4.0)  # the second segment, not "hello friends..."
    assert set(best.text.split()) <= set(SPEECH_DRUGS[1].split())
    assert all(s.score > 0 for s in out.rationale.spans)
    assert [s.score for s in out.rationale.spans] == sorted((s.score for s in out.rationale.spans), reverse=True)
    assert len(out.rationale.spans) <= speech_model.config.n_evidence
    assert all(f.t_s in {0.0, 1.333, 2.667} for f in out.rationale.frames)


def test_occlusion_cost_is_bounded(speech_model):
    long = video(caption=" ".join(f"w{i}" for i in range(100)), speech=("talk " * 40,), frames=3, audio_s=0)
    units = speech_model.text_units(long)
    groups = speech_model.occlusion_groups(units)
    assert len(groups) <= speech_model.config.max_occlusion_units
    assert sorted(i for g in groups for i in g) == [i for i, u in enumerate(units) if u.modality]
    for g in groups:  # a group never mixes sources
        assert len({(units[i].modality, units[i].start_s) for i in g}) == 1
