"""A tiny random Qwen2 saved like a real checkpoint, for tests of stage 2 as an LLM."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_qwen2(folder: Path, with_chat_template: bool = True) -> Path:
    """A random 2-layer Qwen2 with a byte-level BPE tokenizer trained here on the policy's words,
    `<|image_pad|>` as a special token and (by default) a chat template: loads through the same
    path as the real Qwen2.5 folder that inference.llm_import writes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from inference.llm import DEMO_EXAMPLES, DEMO_POLICY_TEXT

    corpus = [DEMO_POLICY_TEXT, *(e for example in DEMO_EXAMPLES for e in example),
              "Label: ok scam drugs weapons Reason: Caption: Speech: On-screen text: Frames: Audio: (none)"] * 10
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>", "<|image_pad|>"])
    if with_chat_template:  # Qwen's ChatML, shortened
        tokenizer.chat_template = (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=0, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
