"""A tiny randomly initialised causal LM, built offline, standing in for a real local model.

The real loading and generation code of the GPU worker runs against it: a Llama architecture (the
one most open models share), saved with `save_pretrained` and loaded back with `from_pretrained`,
and a byte-level BPE tokenizer trained here on a few lines, so any text encodes and nothing is
downloaded. Its answers are noise; the tests and the benchmark care about tokens, batching and flow.
"""

from __future__ import annotations

from pathlib import Path

# A minimal ChatML-style template: enough to exercise the chat-template path (tools included).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}\n<tool_call>{{ c['function'] | tojson }}</tool_call>"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog.",
    '<tool_call>{"name": "read_file", "arguments": {"path": "app/main.py"}}</tool_call>',
    "Write a health endpoint that returns status ok. Tests pass; the change is done.",
    "<|im_start|>system\nYou are a coding agent.<|im_end|>\n<|im_start|>user\nFix the bug.<|im_end|>",
]


def build_tiny_model(
    folder: Path,
    *,
    chat_template: str | None = CHAT_TEMPLATE,
    layers: int = 2,
    hidden: int = 64,
    context: int = 4096,
    seed: int = 0,
) -> Path:
    """Write a tiny model (config, safetensors weights, tokenizer) into `folder` and return it.

    `context` is long so that a test can start a generation that runs for seconds and cancel it.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # Wider than the usual 0.02, so that the untrained model's answer depends on the whole prompt
        # instead of repeating one token: the tests tell requests apart by their answers.
        initializer_range=0.2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def skip_without_gpu_extra() -> None:
    """Skip (with the reason) where the optional GPU extra is not installed."""
    import pytest

    for module in ("torch", "transformers"):
        pytest.importorskip(
            module,
            reason=f"{module} is not installed: the GPU worker's tests need the gpu extra (pip install -e '.[gpu]')",
        )
