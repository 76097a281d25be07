"""Stage 2 of the cascade: a pretrained decoder LLM that reads the policy and the video.

COEF-VQ's stage 2 is a multimodal LLM fine-tuned with LoRA. Here the language backbone is any
local Hugging Face causal LM (the offline default is Qwen2.5-Coder-1.5B-Instruct, imported by
inference.llm_import). One chat goes through it:

    system:     "You moderate videos under this policy: <the Policy row's text> ..."
    examples:   a few (evidence -> "Label: x\\nReason: ...") turns       } the prefix: the same for
    user:       "Caption: ...                                          } every video, so its keys
                 Speech: [0.0-2.4 s] ... | [2.4-5.0 s] ...              } and values are computed
                 On-screen text: [1.0 s] ... ; [3.0 s] ...                once and reused
                 Frames: frame frame ... (+ Audio: audio ... with early fusion)"
    assistant:  "Label:"

and the class scores are the LM's own next-token logits for " ok", " scam", ... So the untrained
model already classifies from its instructions and examples, and LoRA (r 32, alpha 64 on the
attention projections, through peft) teaches it the policy.

Frames enter as tokens (a small ViT trained here, a LLaVA-style projector) added onto the words
that stand for them, one token each; Whisper audio joins late (a vector from the frozen encoder, through a small
head, added to the label logits) or early (audio tokens like the frames), as in the paper. Both
pass through tanh gates that start at zero, so an untrained model is exactly the prompted LLM and
the other modalities can only add once trained (Flamingo's gated cross-attention, applied to
inputs).

`predict` also says why: each modality's contribution (how far p(violation) drops without it: each
variant reuses the full video's keys and values up to where it differs, so it pays only for the
rest of the prompt) and a short explanation the model writes after its label, followed
by the evidence it rests on quoted verbatim with times.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from inference.audio_encoder import AudioEncoderConfig, WhisperAudioEncoder
from inference.int8 import quantize_block
from inference.mllm import (ADAPTER_DIR, CONFIG_FILE, EvidenceSpan, MLLMOutput, Rationale, load_trained_modules,
                            sample_frames, save_classifier, share_budget, trained_state_dict)
from inference.policy import LABELS, VIOLATING
from inference.types import SAMPLE_RATE, VideoFeatures, without_control_characters
from inference.vision import VisionConfig, VisionTransformer

TEXT_MODALITIES: tuple[str, ...] = ("caption", "speech", "onscreen")
# A violation's written reason starts with the field that carries it, in the prompt examples' words.
OPENINGS = {"caption": "The caption", "speech": "The speaker", "onscreen": "The on-screen text"}
MODALITIES: tuple[str, ...] = (*TEXT_MODALITIES, "visual", "audio")
ARCHITECTURE = "llm-classifier"  # config.json's "architecture": tells loaders which class to build
NONE_TEXT = "(none)"
# LoRA's learning rate for the LLM: the pretrained model already knows the words, so a step the
# size the small MiniLM classifier takes (1e-3) would mostly unlearn them.
LLM_LORA_LR = 2e-4

# The demo policy (shared/POLICY.md), as the seeded Policy row says it. A deployment passes its
# own Policy's text.
DEMO_POLICY_TEXT = (
    "A video gets exactly one label. ok: nothing breaks the policy. scam: promotes a fraud (free money or "
    "crypto doubling, fake giveaways asking for payment or personal details, selling followers or likes, "
    "'DM me to invest'). drugs: offers to sell, deliver or source illegal drugs, or prescription pills "
    "without a prescription. weapons: offers to sell weapons or ammunition, explains how to build one, or "
    "threatens violence. A mention inside a protective, news or educational framing is ok, even when the "
    "framing sits in another modality; a disclaimer does not launder a promotion."
)
# How to read a video, around the policy's own text ({policy}, {labels}). General reading advice,
# not tuned to any test set: what a small LLM gets wrong without it is treating a harmless caption
# as the whole video, and taking an offer for a "framing".
DEFAULT_INSTRUCTIONS = (
    "You moderate short videos under this policy:\n{policy}\n\n"
    "Each video comes as its caption, a transcript of its speech and the text shown on screen. The "
    "transcript and the on-screen text are machine-made and may misspell or run words together. A violation "
    "can sit in any one of these while the others are harmless small talk; read slang, abbreviations and "
    "misspellings for what they mean. If any part offers, sells, advertises or asks for money for something "
    "the policy forbids, or threatens someone, the video violates, whatever the rest says. Answer ok when "
    "nothing does, or when the mention only reports, warns or teaches.\n"
    "Answer with 'Label: <one of {labels}>', then 'Reason:' and one short sentence."
)
# Short examples in the prompt, each label in more than one field. Written for the prompt, not
# drawn from the benchmark's templates nor from bench/generalize.py's hand-written videos:
# (caption, speech, on-screen text, label, reason); "" = none.
DEMO_EXAMPLES: tuple[tuple[str, str, str, str, str], ...] = (
    ("my sunday hike with the dog", "look at that view, we finally made it to the top", "", "ok",
     "A hiking video; nothing is offered or threatened."),
    ("quick update", "if you need oxy or xanax I got you, no script needed, message me for prices", "", "drugs",
     "The speaker offers prescription pills without a prescription."),
    ("cozy night in", "just reading my book and drinking tea", "SEND 0.1 ETH GET 0.2 BACK", "scam",
     "The on-screen text promises to double the crypto viewers send."),
    ("local news tonight", "officers arrested two men and seized a stash of heroin", "BREAKING NEWS", "ok",
     "A news report about an arrest; it sells nothing."),
    ("selling my old range gear, pistols and ammo, cash only, I ship anywhere", "", "", "weapons",
     "The caption offers guns and ammunition for sale."),
    ("for educational purposes only", "ten thousand followers for five dollars, link in my bio", "", "scam",
     "It sells followers; the disclaimer does not change that."),
    ("gym diaries", "keep your back straight and breathe out on the way up", "PILLS + POWDER, DELIVERY TONIGHT, DM",
     "drugs", "The on-screen text advertises drug delivery."),
    ("stay safe online", "warning, anyone promising to double your bitcoin is a thief", "", "ok",
     "A warning against a crypto scam."),
)


@dataclass(frozen=True)
class LLMConfig:
    audio_checkpoint: str  # openai-whisper checkpoint file (inference.whisper_import)
    backbone_path: str  # local HF causal-LM folder (inference.llm_import writes the default)
    policy_text: str = DEMO_POLICY_TEXT
    instructions: str = DEFAULT_INSTRUCTIONS
    labels: tuple[str, ...] = LABELS
    violating: tuple[str, ...] = VIOLATING
    examples: tuple[tuple[str, str, str, str, str], ...] = DEMO_EXAMPLES  # () = none
    dtype: str = "auto"  # of the backbone: "auto" (backbone_dtype), or a torch dtype name
    fusion: str = "late"  # "late" | "early": where the Whisper audio joins
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # LoRA on the prompt's shared prefix (instructions, policy, examples: ~1,000 tokens) too. Off:
    # the prefix keeps the pretrained model's keys and values, computed once, and a training step
    # runs only the videos' own tokens, about twice as fast on a CPU; the videos' tokens still
    # read the prefix through their adapted queries. Artifacts saved before the option existed
    # were trained with it on and load that way (from_dict).
    adapt_prefix: bool = False
    # How the frames (and early-fused audio) sit in the prompt, one slot each, the token their
    # features are added onto: "words" (" frame", one token) or "times" (" 1.5 s,", six tokens),
    # as models saved before the option were trained (from_dict). Every text modality's
    # contribution reads this line again, so its length is paid up to four times per video.
    slot_layout: str = "words"
    n_frames: int = 6
    image_size: int = 64
    patch_size: int = 16
    vision_d_model: int = 192
    vision_layers: int = 2
    vision_heads: int = 4
    n_audio_tokens: int = 4
    max_evidence_tokens: int = 384  # caption + speech + on-screen text, shared by share_budget
    explain_max_new_tokens: int = 32
    # Prompt-lookup draft per decode pass (generate_reason); 0 = plain greedy; None: default_draft_tokens.
    explain_draft_tokens: int | None = None
    n_evidence: int = 3  # quoted spans in an explanation
    audio_whisper_sha256: str = ""  # filled in when the model is built: the encoder it trains with

    def __post_init__(self):
        if self.fusion not in ("late", "early"):
            raise ValueError(f"fusion must be 'late' or 'early', not {self.fusion!r}")
        if self.slot_layout not in SLOT_HEADINGS:
            raise ValueError(f"slot_layout must be one of {sorted(SLOT_HEADINGS)}, not {self.slot_layout!r}")
        if "ok" not in self.labels:
            raise ValueError("labels must contain 'ok'")
        if not set(self.violating) <= set(self.labels):
            raise ValueError(f"violating labels {sorted(set(self.violating) - set(self.labels))} are not labels")
        if any(example[3] not in self.labels for example in self.examples):
            raise ValueError("every example's label must be one of the labels")

    @property
    def vision(self) -> VisionConfig:
        return VisionConfig(image_size=self.image_size, patch_size=self.patch_size, d_model=self.vision_d_model,
                            n_layers=self.vision_layers, n_heads=self.vision_heads)

    def to_dict(self) -> dict:
        return {"architecture": ARCHITECTURE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "LLMConfig":
        known = {f.name for f in fields(cls)}
        values = {"adapt_prefix": True, "slot_layout": "times", **{k: v for k, v in data.items() if k in known}}
        for name in ("labels", "violating", "lora_target_modules"):
            if name in values:
                values[name] = tuple(values[name])
        if "examples" in values:
            values["examples"] = tuple(tuple(e) for e in values["examples"])
        return cls(**values)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class EvidencePiece:
    """One transcript segment, on-screen line or the caption: what an explanation may quote."""

    modality: str  # "caption" | "speech" | "onscreen"
    text: str
    start_s: float | None = None
    end_s: float | None = None

    def rendered(self) -> str:
        if self.modality == "speech":
            return f"[{self.start_s:.1f}-{self.end_s:.1f} s] {self.text}"
        if self.modality == "onscreen":
            return f"[{self.start_s:.1f} s] {self.text}"
        return self.text


@dataclass
class LLMPrepared:
    """One video: its evidence token ids per modality and its frozen audio features."""

    pieces: dict[str, list[EvidencePiece]]  # per text modality
    text_ids: dict[str, list[int]]  # per text modality, truncated to its share of the budget
    frames: Tensor  # (T, 3, S, S) in [-1, 1]
    frame_mask: Tensor  # (T,) bool
    frame_times: list[float]  # len T
    audio_seconds: float
    audio_tokens: Tensor  # (k, d_audio)
    audio_pooled: Tensor  # (d_audio,)
    audio_present: bool
    dropped: frozenset[str] = frozenset()  # modalities removed (contributions)


@dataclass
class LLMInputs:
    suffix_ids: Tensor  # (B, L) long, right padded
    suffix_mask: Tensor  # (B, L) bool
    frame_slots: Tensor  # (B, L) long: the frame whose token is added here (its time's first token), else -1
    audio_slots: Tensor  # (B, L) long: the same for early-fusion audio tokens
    frames: Tensor  # (B, T, 3, S, S)
    audio_tokens: Tensor  # (B, k, d_audio)
    audio_pooled: Tensor  # (B, d_audio)
    audio_present: Tensor  # (B,) bool: present and not dropped

    def to(self, device: torch.device | str) -> "LLMInputs":
        return LLMInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def evidence_pieces(features: VideoFeatures) -> dict[str, list[EvidencePiece]]:
    caption = " ".join(features.caption.split())
    return {
        "caption": [EvidencePiece("caption", caption)] if caption else [],
        "speech": [EvidencePiece("speech", " ".join(s.text.split()), s.start_s, s.end_s)
                   for s in features.transcript if s.text.strip()],
        "onscreen": [EvidencePiece("onscreen", " ".join(line.text.split()), line.t_s, line.t_s)
                     for line in sorted(features.ocr, key=lambda line: line.t_s) if line.text.strip()],
    }


SEPARATORS = {"caption": " ", "speech": " | ", "onscreen": " ; "}
# The lines whose tokens carry the frames and the early-fused audio, per LLMConfig.slot_layout.
SLOT_HEADINGS = {"words": {"visual": "\nFrames:", "audio": "\nAudio:"},
                 "times": {"visual": "\nFrames at:", "audio": "\nAudio at:"}}
SLOT_WORDS = {"visual": " frame", "audio": " audio"}
HEADINGS = {"caption": "Caption: ", "speech": "\nSpeech: ", "onscreen": "\nOn-screen text: "}


def time_list(times: list[float]) -> str:
    return ",".join(f" {t:.1f} s" for t in times)


def slot_pieces(modality: str, times: list[float], layout: str) -> list[str]:
    """The text of each frame's (or audio window's) slot, in order: its word, or its time."""
    if layout == "words":
        return [SLOT_WORDS[modality]] * len(times)
    return [time_list([t]) + ("," if k < len(times) - 1 else "") for k, t in enumerate(times)]


def slot_line(modality: str, times: list[float], layout: str) -> str:
    return SLOT_HEADINGS[layout][modality] + ("".join(slot_pieces(modality, times, layout)) or " " + NONE_TEXT)


def render_evidence(pieces: dict[str, list[EvidencePiece]]) -> str:
    """The evidence as the prompt shows it (the examples are written the same way)."""
    return "".join(HEADINGS[m] + (SEPARATORS[m].join(p.rendered() for p in pieces[m]) or NONE_TEXT)
                   for m in TEXT_MODALITIES)


# ---------------------------------------------------------------------------------------
# The model


class LLMClassifier(nn.Module):
    def __init__(self, config: LLMConfig, adapter_dir: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        from peft import LoraConfig, PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.int8 = False  # quantize_int8: serving only

        path = Path(config.backbone_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no HF model folder at {path} (config.json missing); "
                                    "run `python -m inference.llm_import` or set COEFVQ_LLM_PATH")
        whisper_sha = file_sha256(config.audio_checkpoint)
        if config.audio_whisper_sha256 and config.audio_whisper_sha256 != whisper_sha:
            raise ValueError(f"this model was trained with the Whisper checkpoint of sha256 "
                             f"{config.audio_whisper_sha256[:12]}..., but {config.audio_checkpoint} is "
                             f"{whisper_sha[:12]}...: its audio features would mean something else")
        self.config = config = replace(config, audio_whisper_sha256=whisper_sha)
        self.labels = tuple(config.labels)
        self.violating_index = [self.labels.index(label) for label in config.violating]
        self.tokenizer = AutoTokenizer.from_pretrained(os.fspath(path), local_files_only=True)
        language_model = AutoModelForCausalLM.from_pretrained(os.fspath(path), local_files_only=True,
                                                              dtype=backbone_dtype(config.dtype, device))
        if adapter_dir is None:
            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=list(config.lora_target_modules), bias="none")
            self.backbone = get_peft_model(language_model, lora)
        else:
            self.backbone = PeftModel.from_pretrained(language_model, os.fspath(adapter_dir), is_trainable=True)
        d_model = language_model.get_input_embeddings().embedding_dim

        self.audio_encoder = WhisperAudioEncoder(AudioEncoderConfig(checkpoint_path=config.audio_checkpoint,
                                                                    n_tokens=config.n_audio_tokens))
        d_audio = self.audio_encoder.d_audio
        # Trained here (saved beside the adapter). Gates start at 0: tanh(0) = 0 adds nothing.
        self.vision = VisionTransformer(config.vision)
        self.visual_projector = nn.Sequential(nn.Linear(self.vision.d_model, d_model), nn.GELU(),
                                              nn.Linear(d_model, d_model))
        # (1,), not 0-d: FSDP refuses 0-d parameters.
        self.visual_gate = nn.Parameter(torch.zeros(1))
        if config.fusion == "early":
            self.audio_projector = nn.Sequential(nn.LayerNorm(d_audio), nn.Linear(d_audio, d_model), nn.GELU(),
                                                 nn.Linear(d_model, d_model))
        else:
            self.audio_head = nn.Sequential(nn.LayerNorm(d_audio), nn.Linear(d_audio, 64), nn.GELU(),
                                            nn.Linear(64, len(self.labels)))
        self.audio_gate = nn.Parameter(torch.zeros(1))
        # A bias per label on the LM's scores: the prompted model leans towards "ok"; fit on
        # labelled videos without touching the LLM (calibrate_label_bias), and trained with LoRA.
        self.label_bias = nn.Parameter(torch.zeros(len(self.labels)))

        self.label_token_ids = self._label_token_ids()
        self.prefix_ids, self.suffix_tail_ids = self._prompt_ids()
        self.heading_ids = {m: self._ids(HEADINGS[m]) for m in TEXT_MODALITIES}
        self.none_ids = self._ids(NONE_TEXT)
        self.slot_heading_ids = {m: self._ids(SLOT_HEADINGS[config.slot_layout][m]) for m in ("visual", "audio")}
        # An explanation ends at the end of its line or of its first sentence.
        self.stop_ids = {self.tokenizer.eos_token_id, *self._ids("\n")} - {None}
        self.sentence_end_ids = {ids[-1] for ids in (self._ids("."), self._ids(". ")) if ids}
        self._prefix_cache = None  # keys/values of prefix_ids; with adapt_prefix only while not training
        self.to(device)

    # -- pieces -----------------------------------------------------------------------

    @property
    def language_model(self) -> nn.Module:
        return self.backbone.get_base_model()

    @property
    def transformer(self) -> nn.Module:
        """The decoder stack without its LM head (Qwen2Model, LlamaModel, ...), LoRA inside."""
        return self.language_model.base_model

    @property
    def device(self) -> torch.device:
        return self.visual_gate.device

    def trained_module_names(self) -> tuple[str, ...]:
        names = ["vision", "visual_projector", "visual_gate", "audio_gate", "label_bias"]
        names.append("audio_projector" if self.config.fusion == "early" else "audio_head")
        return tuple(names)

    def gate_openings(self) -> dict[str, float]:
        """tanh of the visual and audio gates: how far the frames and the audio are let in (0: not at all)."""
        return {"visual": float(torch.tanh(self.visual_gate)), "audio": float(torch.tanh(self.audio_gate))}

    def parameter_counts(self) -> dict[str, int]:
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "lora": sum(p.numel() for n, p in self.backbone.named_parameters() if "lora_" in n),
            "backbone": sum(p.numel() for p in self.backbone.parameters()),
        }

    def reset_prefix_cache(self) -> None:
        """Forget the prompt's cached keys and values: call after changing weights in place (a
        quantization, a perturbation); the next pass computes them again."""
        self._prefix_cache = None

    def train(self, mode: bool = True) -> "LLMClassifier":
        if mode and self.int8:
            raise RuntimeError("an int8-quantized model only serves; load it again to train it")
        if mode and self.config.adapt_prefix:
            self.reset_prefix_cache()  # LoRA is about to change; eval() keeps what was computed
        super().train(mode)
        self.audio_encoder.train(False)
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.reset_prefix_cache()  # computed with the weights being replaced
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- the prompt -------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _label_token_ids(self) -> list[int]:
        ids = [self._ids(" " + label)[0] for label in self.labels]
        if len(set(ids)) != len(ids):
            raise ValueError(f"labels {self.labels} do not start with distinct tokens in this tokenizer")
        return ids

    def _messages(self, evidence: str) -> list[dict]:
        labels = ", ".join(self.labels)
        system = self.config.instructions.format(policy=self.config.policy_text, labels=labels)
        messages = [{"role": "system", "content": system}]
        for caption, speech, onscreen, label, reason in self.config.examples:
            messages += [{"role": "user", "content": self.example_text(caption, speech, onscreen)},
                         {"role": "assistant", "content": f"Label: {label}\nReason: {reason}"}]
        return messages + [{"role": "user", "content": evidence}]

    def example_text(self, caption: str, speech: str, onscreen: str) -> str:
        """An example video laid out as a real one is (made-up times, three frames)."""
        layout = self.config.slot_layout
        pieces = {"caption": [EvidencePiece("caption", caption)] if caption else [],
                  "speech": [EvidencePiece("speech", speech, 0.0, 4.0)] if speech else [],
                  "onscreen": [EvidencePiece("onscreen", onscreen, 1.0, 1.0)] if onscreen else []}
        text = render_evidence(pieces) + slot_line("visual", [0.0, 2.0, 4.0], layout)
        if self.config.fusion == "early":
            text += slot_line("audio", [1.0 * j for j in range(self.config.n_audio_tokens)] if speech else [], layout)
        return text

    def _prompt_ids(self) -> tuple[list[int], list[int]]:
        """(prefix ids: everything before this video's evidence, tail ids: after it up to 'Label:')."""
        sentinel = "\u2063EVIDENCE\u2063"
        messages = self._messages(sentinel)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # a base model: a plain transcript of the same chat
            text = "".join(f"{m['role']}: {m['content']}\n\n" for m in messages) + "assistant: "
        before, after = text.split(sentinel)
        return self._ids(before), self._ids(after + "Label:")

    # -- features -> tensors ----------------------------------------------------------

    def prepare(self, features: list[VideoFeatures]) -> list[LLMPrepared]:
        """Tokenise the evidence, sample frames and run the frozen Whisper encoder (cache this)."""
        audio = self.audio_encoder([f.audio for f in features])
        prepared = []
        for i, feature in enumerate(features):
            pieces = evidence_pieces(feature)
            ids = {m: self._ids(SEPARATORS[m].join(p.rendered() for p in pieces[m])) if pieces[m] else []
                   for m in TEXT_MODALITIES}
            budgets = share_budget([len(ids[m]) for m in TEXT_MODALITIES], self.config.max_evidence_tokens)
            frames, frame_mask, frame_times = sample_frames(feature.frames, self.config.n_frames,
                                                            self.config.image_size)
            prepared.append(LLMPrepared(
                pieces=pieces, text_ids={m: ids[m][:b] for m, b in zip(TEXT_MODALITIES, budgets)},
                frames=frames, frame_mask=frame_mask, frame_times=frame_times,
                audio_seconds=0.0 if feature.audio is None else len(feature.audio) / SAMPLE_RATE,
                audio_tokens=audio.tokens[i], audio_pooled=audio.pooled[i],
                audio_present=bool(audio.present[i]),
            ))
        return prepared

    def _suffix(self, video: LLMPrepared) -> tuple[list[int], list[int], list[int]]:
        """-> (ids, frame slot per id, audio slot per id) of one video's part of the prompt."""
        ids: list[int] = []
        for m in TEXT_MODALITIES:
            text = video.text_ids[m] if m not in video.dropped else []
            ids += self.heading_ids[m] + (text or self.none_ids)
        # Frame and audio tokens land on the words that stand for them ("Frames: frame frame"), so
        # with the gates at 0 the LLM reads plain text. A dropped one keeps its text and loses only
        # its gated addition: its contribution is exactly 0 while its gate is.
        frame_slots = [-1] * len(ids)
        times = [t for t, present in zip(video.frame_times, video.frame_mask.tolist()) if present]
        piece_ids, slots = self._slots("visual", times, dropped="visual" in video.dropped)
        ids += self.slot_heading_ids["visual"] + piece_ids
        frame_slots += [-1] * len(self.slot_heading_ids["visual"]) + slots
        audio_slots = [-1] * len(ids)
        if self.config.fusion == "early":
            n_audio = self.config.n_audio_tokens if video.audio_present else 0
            window = video.audio_seconds / max(1, n_audio)
            piece_ids, slots = self._slots("audio", [j * window for j in range(n_audio)],
                                           dropped="audio" in video.dropped)
            ids += self.slot_heading_ids["audio"] + piece_ids
            frame_slots += [-1] * (len(ids) - len(frame_slots))
            audio_slots += [-1] * len(self.slot_heading_ids["audio"]) + slots
        ids += self.suffix_tail_ids
        pad = [-1] * (len(ids) - len(frame_slots))
        return ids, frame_slots + pad, audio_slots + [-1] * (len(ids) - len(audio_slots))

    def _slots(self, modality: str, times: list[float], dropped: bool) -> tuple[list[int], list[int]]:
        """Token ids of the slots (" frame frame ..." or " 0.0 s, 1.5 s, ...") and, per id, the
        index of the slot it starts (-1 elsewhere, and everywhere when dropped)."""
        if not times:
            none = self._ids(" " + NONE_TEXT)
            return none, [-1] * len(none)
        ids: list[int] = []
        slots: list[int] = []
        for k, text in enumerate(slot_pieces(modality, times, self.config.slot_layout)):
            piece = self._ids(text)
            ids += piece
            slots += [k if not dropped else -1] + [-1] * (len(piece) - 1)
        return ids, slots

    def collate(self, prepared: list[LLMPrepared]) -> LLMInputs:
        rows = [self._suffix(video) for video in prepared]
        width = max(len(ids) for ids, _, _ in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        suffix_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, L)
        suffix_mask = torch.zeros(len(rows), width, dtype=torch.bool)  # (B, L)
        frame_slots = torch.full((len(rows), width), -1, dtype=torch.long)  # (B, L)
        audio_slots = torch.full((len(rows), width), -1, dtype=torch.long)  # (B, L)
        for row, (ids, f_slots, a_slots) in enumerate(rows):
            suffix_ids[row, : len(ids)] = torch.tensor(ids)
            suffix_mask[row, : len(ids)] = True
            frame_slots[row, : len(ids)] = torch.tensor(f_slots)
            audio_slots[row, : len(ids)] = torch.tensor(a_slots)
        present = [v.audio_present and "audio" not in v.dropped for v in prepared]
        return LLMInputs(
            suffix_ids=suffix_ids, suffix_mask=suffix_mask, frame_slots=frame_slots, audio_slots=audio_slots,
            frames=torch.stack([_valid_first(v.frames, v.frame_mask) for v in prepared]),  # (B, T, 3, S, S)
            audio_tokens=torch.stack([v.audio_tokens for v in prepared]),  # (B, k, d_audio)
            audio_pooled=torch.stack([v.audio_pooled for v in prepared]),  # (B, d_audio)
            audio_present=torch.tensor(present, dtype=torch.bool),  # (B,)
        )

    def features_to_inputs(self, features: list[VideoFeatures]) -> LLMInputs:
        return self.collate(self.prepare(features))

    # -- forward ----------------------------------------------------------------------

    def _prefix(self, batch_size: int):
        """The prefix's keys and values for batch_size rows. From the pretrained model (the
        default): computed once and reused, training or not. With adapt_prefix: computed once
        while not training, and every step while training (LoRA changes them)."""
        from transformers import DynamicCache

        adapting = self.config.adapt_prefix and (self.training or torch.is_grad_enabled())
        if adapting or self._prefix_cache is None:
            ids = torch.tensor([self.prefix_ids], device=self.device)  # (1, P)
            if adapting:
                cache = self.transformer(input_ids=ids, past_key_values=DynamicCache(), use_cache=True).past_key_values
                cache.batch_repeat_interleave(batch_size)
                return cache
            with torch.no_grad(), self._prefix_weights():
                self._prefix_cache = self.transformer(input_ids=ids, past_key_values=DynamicCache(),
                                                      use_cache=True).past_key_values
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(batch_size)
        return cache

    def _prefix_weights(self):
        """The weights the prefix is read with: LoRA's with adapt_prefix, else the pretrained model's."""
        return contextlib.nullcontext() if self.config.adapt_prefix else self.backbone.disable_adapter()

    def embed_suffix(self, inputs: LLMInputs) -> Tensor:
        """Token embeddings, with gated frame (and early audio) tokens added at their slots -> (B, L, d)."""
        embeddings = self.language_model.get_input_embeddings()(inputs.suffix_ids)  # (B, L, d)
        B, T = inputs.frames.shape[:2]
        if bool((inputs.frame_slots >= 0).any()):
            tokens = self.vision(inputs.frames.to(self.vision.cls_token.dtype))  # (B, T, d_vision)
            visual = torch.tanh(self.visual_gate) * self.visual_projector(tokens)  # (B, T, d)
            slots = inputs.frame_slots.clamp(min=0)  # (B, L)
            gathered = torch.gather(visual, 1, slots[..., None].expand(-1, -1, visual.shape[-1]))  # (B, L, d)
            embeddings = embeddings + gathered.to(embeddings.dtype) * (inputs.frame_slots >= 0)[..., None]
        if self.config.fusion == "early" and bool((inputs.audio_slots >= 0).any()):
            audio = torch.tanh(self.audio_gate) * self.audio_projector(inputs.audio_tokens.float())  # (B, k, d)
            slots = inputs.audio_slots.clamp(min=0)  # (B, L)
            gathered = torch.gather(audio, 1, slots[..., None].expand(-1, -1, audio.shape[-1]))  # (B, L, d)
            embeddings = embeddings + gathered.to(embeddings.dtype) * (inputs.audio_slots >= 0)[..., None]
        return embeddings

    def forward(self, inputs: LLMInputs) -> Tensor:
        """-> (B, n_labels) logits: the LM's next-token logits for each label's first token after
        'Label:', plus the gated late audio term."""
        return self.logits_and_cache(inputs)[0]

    def logits_and_cache(self, inputs: LLMInputs, start: int = 0, cache=None):
        """-> ((B, n_labels) logits, the keys and values of prefix + suffix): the explanation
        continues from the cache instead of reading the video's prompt a second time.

        start, cache: the keys and values of the prefix and of the suffix's first `start` tokens,
        known already (those tokens unpadded in every row); only the rest is computed."""
        B, L = inputs.suffix_ids.shape
        if cache is None:
            cache = self._prefix(B)
        mask = torch.cat([torch.ones(B, cache.get_seq_length(), dtype=torch.long, device=self.device),
                          inputs.suffix_mask[:, start:].long()], dim=1)  # (B, P + L): P + start cached
        hidden = self.transformer(inputs_embeds=self.embed_suffix(inputs)[:, start:], attention_mask=mask,
                                  past_key_values=cache, use_cache=True).last_hidden_state  # (B, L - start, d)
        last = inputs.suffix_mask.long().sum(1) - 1 - start  # (B,)
        state = hidden[torch.arange(B, device=self.device), last]  # (B, d)
        weight = self.language_model.get_output_embeddings().weight[self.label_token_ids]  # (K, d)
        logits = state.float() @ weight.float().T + self.label_bias  # (B, K)
        if self.config.fusion == "late":
            logits = logits + self.late_audio_term(inputs)
        return logits, cache

    def late_audio_term(self, inputs: LLMInputs) -> Tensor:
        """-> (B, n_labels): what late fusion adds to the label logits (0 where audio is absent)."""
        audio = self.audio_head(inputs.audio_pooled.float())  # (B, K)
        return torch.tanh(self.audio_gate) * audio * inputs.audio_present[:, None]

    @torch.no_grad()
    def probabilities(self, inputs: LLMInputs, batch_size: int = 8) -> Tensor:
        """-> (B, n_labels) softmax, in chunks of batch_size."""
        out = []
        for start in range(0, inputs.suffix_ids.shape[0], batch_size):
            chunk = LLMInputs(**{f.name: getattr(inputs, f.name)[start: start + batch_size] for f in fields(inputs)})
            out.append(F.softmax(self(chunk.to(self.device)), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def label_logits(self, features: list[VideoFeatures], batch_size: int = 8, progress: bool = False,
                     desc: str = "stage 2") -> Tensor:
        """-> (N, n_labels) logits of many videos, in their order. Batched by length (the videos of
        a batch are padded to its longest): on the first run's 96 training and validation videos
        that pads 13,344 tokens instead of 16,832 in arrival order (bench/results/stage2_batching/)."""
        self.eval()
        prepared = [video for start in range(0, len(features), batch_size)
                    for video in self.prepare(features[start:start + batch_size])]
        order = sorted(range(len(prepared)), key=lambda i: len(self._suffix(prepared[i])[0]))
        logits = torch.zeros(len(prepared), len(self.labels))  # (N, K)
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
            rows = order[start:start + batch_size]
            logits[rows] = self(self.collate([prepared[i] for i in rows]).to(self.device)).float().cpu()
        return logits

    @torch.no_grad()
    def calibrate_label_bias(self, features: list[VideoFeatures], labels: list[str], batch_size: int = 8,
                             l2: float = 1e-3, progress: bool = False) -> Tensor:
        """Fit label_bias alone (K numbers) to labelled videos by maximum likelihood, the LLM's
        scores fixed: a cheap calibration for a model used from its prompt. Returns the bias."""
        self.label_bias.zero_()
        scores = self.label_logits(features, batch_size, progress, desc="calibrating")  # (N, K)
        targets = torch.tensor([self.labels.index(label) for label in labels])  # (N,)
        bias = torch.zeros(len(self.labels), requires_grad=True)
        optimizer = torch.optim.LBFGS([bias], max_iter=200)

        def loss() -> Tensor:
            optimizer.zero_grad()
            with torch.enable_grad():
                value = F.cross_entropy(scores + bias, targets) + l2 * (bias ** 2).sum()
                value.backward()
            return value

        optimizer.step(loss)
        self.label_bias.copy_(bias.detach().to(self.label_bias.device))
        return self.label_bias.detach().cpu()

    def p_violation(self, probabilities: Tensor) -> Tensor:
        return probabilities[..., self.violating_index].sum(-1)

    # -- predict, contributions, explanation ------------------------------------------

    @torch.no_grad()
    def predict_prepared(self, prepared: list[LLMPrepared], explain: bool = False) -> list[MLLMOutput]:
        self.eval()
        outputs = []
        for video in prepared:
            # Removing a modality whose gate is still 0 changes nothing: no pass for it. Late-fused
            # audio never changes what the LLM reads, only a term added to its logits, so its
            # removal is computed from the full row instead of costing a row of its own.
            removable = [m for m in MODALITIES if self._can_contribute(m, video)]
            late_audio = self.config.fusion == "late" and "audio" in removable
            rows = [m for m in removable if not (late_audio and m == "audio")]  # logits row 1 + j: without rows[j]
            inputs = self.collate([video]).to(self.device)
            logits, cache = self.logits_and_cache(inputs)  # (1, K)
            logits = torch.cat([logits] + [self._logits_without(m, video, inputs, cache) for m in rows])  # (1 + M, K)
            if late_audio:
                without_audio = logits[:1] - self.late_audio_term(inputs)  # (1, K)
                logits, rows = torch.cat([logits, without_audio]), rows + ["audio"]  # (2 + M, K)
            probs = F.softmax(logits, dim=-1).cpu()  # (1 + M', K)
            p_violation = self.p_violation(probs)  # (1 + M',)
            full = probs[0]
            label = self.labels[int(full.argmax())]
            contributions = dict.fromkeys(MODALITIES, 0.0)
            contributions.update({m: float(p_violation[0] - p_violation[1 + j]) for j, m in enumerate(rows)})
            rationale = Rationale(label=label)
            if explain:
                rationale.explanation, rationale.spans = self.explain(video, label, contributions, cache)
            outputs.append(MLLMOutput(
                label=label, probabilities={k: float(p) for k, p in zip(self.labels, full.tolist())},
                p_violation=float(p_violation[0]), modality_contributions=contributions, rationale=rationale,
            ))
        return outputs

    def _logits_without(self, modality: str, video: LLMPrepared, inputs: LLMInputs, cache) -> Tensor:
        """(1, K) logits of the video with `modality` removed. The prompt up to the first token where
        the two differ (the removed text's "(none)", or the frame words that lose their frames) is
        the same, so its keys and values come from the full video's pass (`inputs`, `cache`, left
        as they are) and only the rest is computed: the later in the prompt a modality sits, the
        less its removal costs, and the frames, last, cost only their few words."""
        variant = self.collate([replace(video, dropped=frozenset({modality}))]).to(self.device)
        start = min(_shared_length(inputs, variant), variant.suffix_ids.shape[1] - 1)
        shared = copy.deepcopy(cache)
        shared.crop(len(self.prefix_ids) + start - shared.get_seq_length())  # a count < 0 removes from the end
        return self.logits_and_cache(variant, start=start, cache=shared)[0]

    def _can_contribute(self, modality: str, video: LLMPrepared) -> bool:
        if modality in TEXT_MODALITIES:
            return bool(video.text_ids[modality])
        if modality == "visual":
            return bool(video.frame_mask.any()) and float(self.visual_gate) != 0.0
        return video.audio_present and float(self.audio_gate) != 0.0

    def predict(self, features: list[VideoFeatures], explain: bool = False) -> list[MLLMOutput]:
        """Probabilities and per-modality contributions (one batched pass over the video's prompt
        and its variants without each modality, on the cached prefix); explain=True adds the
        written explanation."""
        return self.predict_prepared(self.prepare(features), explain=explain)

    @torch.no_grad()
    def generate_reason(self, video: LLMPrepared, label: str, cache=None, opening: str = "") -> str:
        """The model's own sentence after 'Label: <label>\\nReason:' and `opening` (which the
        sentence then starts with), greedy, bounded. `cache`: the keys and values of this video's
        prompt when the caller has them already.

        Decoded with prompt lookup: a reason mostly repeats words of the evidence or of the prompt's
        example reasons, so the tokens that followed the last few generated ones where they appear
        in the prompt are fed as a draft in the same pass, and kept as far as they are what greedy
        decoding picks. In bf16 a pass over a few tokens costs little more than a pass over one
        (reading the weights dominates), so every kept draft token is most of a step saved; in fp32
        on a CPU it does not, and there the draft is 0 (default_draft_tokens). The
        sentence is greedy decoding's; in bf16 a pass over several tokens rounds a little
        differently from a pass over one, so a near-tie can go the other way (with drafts of 8
        tokens, 2 words of 1 of 8 explanations; none with 4, the default:
        bench/results/stage2_seconds_avx512bf16/prompt_lookup/)."""
        answer_ids = self._ids(f" {label}\nReason:" + (f" {opening}" if opening else ""))
        embed = self.language_model.get_input_embeddings()
        pending = embed(torch.tensor([answer_ids], device=self.device))  # (1, A, d): not in the cache yet
        if cache is None:
            cache = self._prefix(1)
            pending = torch.cat([self.embed_suffix(self.collate([video]).to(self.device)), pending], 1)  # (1, L + A, d)
        prompt = self.prefix_ids + self._suffix(video)[0] + answer_ids
        generated: list[int] = []
        draft_tokens = self.draft_tokens
        while True:
            # Each pass reads what the cache lacks (the answer at first, then the last token) and a draft.
            room = self.config.explain_max_new_tokens - len(generated)
            draft = prompt_lookup_draft(prompt + generated, draft_tokens)[:room]
            if draft:
                pending = torch.cat([pending, embed(torch.tensor([draft], device=self.device))], 1)  # (1, n, d)
            greedy = self._next_token_logits(cache, pending, keep=len(draft) + 1).argmax(-1).tolist()
            kept = next((i for i, (d, g) in enumerate(zip(draft, greedy)) if d != g), len(draft))
            cache.crop(kept - len(draft))  # a count < 0 drops the rejected draft tokens' keys and values
            for token in greedy[: kept + 1]:  # the kept draft tokens, then greedy's token after them
                if token in self.stop_ids:
                    return self._reason_text(generated, opening)
                generated.append(token)
                # A sentence end first is not a sentence ("." before the words): go on.
                sentence_over = token in self.sentence_end_ids and len(generated) > 1
                if sentence_over or len(generated) >= self.config.explain_max_new_tokens:
                    return self._reason_text(generated, opening)
            pending = embed(torch.tensor([generated[-1:]], device=self.device))  # (1, 1, d)

    @property
    def draft_tokens(self) -> int:
        """The prompt-lookup draft of each decode pass: config.explain_draft_tokens, or when that is
        None, default_draft_tokens for the backbone's dtype and device."""
        if self.config.explain_draft_tokens is not None:
            return self.config.explain_draft_tokens
        return default_draft_tokens(self.language_model.get_input_embeddings().weight.dtype, self.device)

    def _next_token_logits(self, cache, inputs_embeds: Tensor, keep: int) -> Tensor:
        """-> (keep, V): the LM's logits after each of the last `keep` of the n new tokens
        (inputs_embeds (1, n, d)), which join `cache`."""
        length = cache.get_seq_length() + inputs_embeds.shape[1]
        hidden = self.transformer(inputs_embeds=inputs_embeds, past_key_values=cache, use_cache=True,
                                  attention_mask=torch.ones(1, length, dtype=torch.long, device=self.device)
                                  ).last_hidden_state[0, -keep:]  # (keep, d)
        # The head reads 2-D rows, not the LM's own logits_to_keep slice: a (1, 1, d) slice of a
        # (1, n, d) tensor keeps the stride n * d on its size-1 batch dim, so torch's matmul does
        # not fold it to one mm, and its CPU bf16 fallback took 2.3 s instead of 0.05 s over the
        # 151,936-word head on one thread (bench/lm_head_slice.py; pytorch/pytorch#186148, #151934).
        return self.language_model.get_output_embeddings()(hidden)  # (keep, V)

    def _reason_text(self, generated: list[int], opening: str) -> str:
        sentence = without_control_characters(self.tokenizer.decode(generated, skip_special_tokens=True))
        return f"{opening} {sentence}".strip() if opening else sentence

    def explain(self, video: LLMPrepared, label: str, contributions: dict[str, float], cache=None
                ) -> tuple[str, list[EvidenceSpan]]:
        """(the model's sentence followed by the evidence it rests on, quoted verbatim with
        times; the quoted spans). Spans come from the modalities that pushed p(violation) the
        way of the label, best matching the sentence's words first. For a violation the sentence
        opens by naming the modality whose removal lowers p(violation) most: left to itself the
        model often named the field of a prompt example instead ("The on-screen text promises to
        double the crypto..." for a scam in the caption)."""
        reason = self.generate_reason(video, label, cache, opening=self.opening(label, contributions))
        spans = cited_spans(video.pieces, reason, contributions, toward_violation=label in self.config.violating,
                            limit=self.config.n_evidence)
        quotes = "; ".join(span_citation(span) for span in spans)
        text = (reason or f"Label {label}.") + (f" Evidence: {quotes}." if quotes else "")
        return text, spans

    def opening(self, label: str, contributions: dict[str, float]) -> str:
        """How a violation's reason starts: the text field that carries it most ("" for an ok
        label, or when no text field raises p(violation))."""
        if label not in self.config.violating:
            return ""
        support, modality = max((contributions.get(m, 0.0), m) for m in TEXT_MODALITIES)
        return OPENINGS[modality] if support > 0 else ""

    # -- serving on a CPU ---------------------------------------------------------------

    def quantize_int8(self) -> "LLMClassifier":
        """Serve from int8 weights on a CPU: the attention projections and the MLP's gate and up
        projections of every decoder block become dynamically quantized (inference.int8, which says
        why the rest keeps its dtype). Serving only: a quantized model refuses to train or be saved."""
        if self.device.type != "cpu":
            raise ValueError(f"int8 serving uses CPU kernels; this model is on {self.device}")
        for block in self.transformer.layers:
            quantize_block(block)
        self.int8 = True
        self.reset_prefix_cache()
        return self

    # -- save / load ------------------------------------------------------------------

    def trained_state_dict(self) -> dict[str, Tensor]:
        return trained_state_dict(self)

    def save(self, folder: str | os.PathLike) -> Path:
        """config.json + the LoRA adapter (peft) + the ViT, projectors, gates and audio head."""
        if self.int8:
            raise RuntimeError("an int8-quantized model only serves; save the model it was loaded from")
        return save_classifier(self, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu", int8: bool = False,
             **overrides) -> "LLMClassifier":
        """Rebuild from a saved folder; overrides replace config fields (backbone_path or
        audio_checkpoint on another machine; a different Whisper checkpoint is refused). int8: to
        serve on a CPU from int8 weights (quantize_int8)."""
        folder = Path(folder)
        config = replace(LLMConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())), **overrides)
        model = cls(config, adapter_dir=folder / ADAPTER_DIR, device=device)
        load_trained_modules(model, folder)
        model = model.to(device).eval()
        return model.quantize_int8() if int8 else model


def prompt_lookup_draft(tokens: list[int], max_draft: int, max_ngram: int = 3) -> list[int]:
    """Up to max_draft tokens that followed the latest earlier occurrence of the longest of the last
    max_ngram..1 tokens of `tokens` (prompt lookup decoding; [] when none occurs earlier)."""
    if max_draft <= 0:
        return []
    for n in range(min(max_ngram, len(tokens) - 1), 0, -1):
        tail = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start: start + n] == tail:
                return tokens[start + n: start + n + max_draft]
    return []


def _shared_length(a: LLMInputs, b: LLMInputs) -> int:
    """How many leading suffix tokens two single-video inputs share (the same ids, and the same frame
    and audio tokens added to them)."""
    n = min(a.suffix_ids.shape[1], b.suffix_ids.shape[1])
    same = ((a.suffix_ids[0, :n] == b.suffix_ids[0, :n]) & (a.frame_slots[0, :n] == b.frame_slots[0, :n])
            & (a.audio_slots[0, :n] == b.audio_slots[0, :n]))  # (n,)
    differs = torch.nonzero(~same)
    return int(differs[0, 0]) if len(differs) else n


def _valid_first(frames: Tensor, mask: Tensor) -> Tensor:
    """Frames with the valid ones first, so slot k is the k-th present frame."""
    order = torch.argsort((~mask).to(torch.int8), stable=True)  # (T,)
    return frames[order]


WORD = re.compile(r"[a-z0-9']+")


def cited_spans(pieces: dict[str, list[EvidencePiece]], reason: str, contributions: dict[str, float],
                toward_violation: bool, limit: int) -> list[EvidenceSpan]:
    """The evidence pieces an explanation quotes: from modalities whose removal moves
    p(violation) against the label (they support it), ranked by contribution and by shared
    words with the model's sentence."""
    sign = 1.0 if toward_violation else -1.0
    reason_words = set(WORD.findall(reason.lower()))
    ranked = []
    for modality in TEXT_MODALITIES:
        support = sign * contributions.get(modality, 0.0)
        for piece in pieces[modality]:
            overlap = len(reason_words & set(WORD.findall(piece.text.lower())))
            if support > 0 or overlap:
                ranked.append((max(support, 0.0) + 0.01 * overlap, piece))
    ranked.sort(key=lambda item: -item[0])
    return [EvidenceSpan(modality=p.modality, text=p.text, start_s=p.start_s, end_s=p.end_s, score=float(score))
            for score, p in ranked[:limit]]


def span_citation(span: EvidenceSpan) -> str:
    if span.modality == "speech":
        return f'speech {span.start_s:.1f}-{span.end_s:.1f} s "{span.text}"'
    if span.modality == "onscreen":
        return f'on-screen at {span.start_s:.1f} s "{span.text}"'
    return f'caption "{span.text}"'


def stage2_config_from_dict(data: dict):
    """The config a stage-2 folder was saved with: LLMConfig, or MLLMConfig for the older
    MiniLM-backbone classifier (inference.mllm)."""
    if data.get("architecture") == ARCHITECTURE:
        return LLMConfig.from_dict(data)
    from inference.mllm import MLLMConfig

    return MLLMConfig.from_dict(data)


def load_stage2(folder: str | os.PathLike, *, audio_checkpoint: str, llm_path: str | None = None,
                device: str | torch.device = "cpu", cpu_int8: bool = False):
    """Whichever stage-2 class saved `folder`, on `device`, with this machine's Whisper checkpoint
    (an LLM classifier refuses one it was not trained with) and LLM folder. cpu_int8: an LLM
    classifier on a CPU serves from int8 weights (LLMClassifier.quantize_int8)."""
    config = stage2_config_from_dict(json.loads((Path(folder) / CONFIG_FILE).read_text()))
    if isinstance(config, LLMConfig):
        overrides = {"audio_checkpoint": audio_checkpoint}
        if llm_path:
            overrides["backbone_path"] = llm_path
        int8 = cpu_int8 and torch.device(device).type == "cpu"
        return LLMClassifier.load(folder, device=device, int8=int8, **overrides)
    from inference.mllm import MultimodalClassifier

    return MultimodalClassifier.load(folder, audio_checkpoint=audio_checkpoint).to(device).eval()


def stage2_probabilities(model, features: list[VideoFeatures], batch_size: int = 8,
                         progress: bool = False) -> np.ndarray:
    """(N, K) class probabilities of either stage-2 class, without the contributions and the
    explanation that `predict` adds."""
    if isinstance(model, LLMClassifier):
        return F.softmax(model.label_logits(features, batch_size, progress), dim=-1).numpy()
    starts = range(0, len(features), batch_size)
    chunks = [model.probabilities(model.features_to_inputs(features[start:start + batch_size])).numpy()
              for start in tqdm(starts, desc="stage 2", disable=not progress, leave=False)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.labels)), dtype=np.float32)


def backbone_dtype(setting: str, device: str | torch.device) -> torch.dtype:
    """'auto': bf16 where the hardware computes in it (CUDA; CPUs with AVX512-BF16 or AMX), else
    fp32. On an AVX2-only CPU bf16 matmuls are converted in software: a 108-token forward of the
    1.5B LLM took 3.8x as long in bf16 as in fp32 there (README, "Stage 2 on a CPU")."""
    if setting != "auto":
        return getattr(torch, setting)
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return torch.float32


def default_draft_tokens(dtype: torch.dtype, device: str | torch.device) -> int:
    """4 where a decode pass over a few tokens costs about what a pass over one does (bf16 or fp16
    weights: reading them dominates), 0 for fp32 on a CPU, where the extra tokens' compute does
    not hide behind the reads. On one thread, drafts of 4 took the explanation from 6.6 to 4.8 s in
    bf16 on an AVX512-BF16 EPYC (a fine-tune) and from 9.6 to 13.4 s in fp32 on an AVX2 one (the
    first run's prompted LLM): bench/results/stage2_seconds_avx512bf16/ and stage2_seconds_avx2/."""
    return 0 if torch.device(device).type == "cpu" and dtype == torch.float32 else 4


def available_device(setting: str = "auto") -> torch.device:
    """'auto': CUDA when present, else the CPU; otherwise the named device."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


