"""Random-weight Qwen models with a locally trained tokenizer, built without downloading anything.

The engine tests and bench/engines_gpu.py need a model folder that vLLM, LMDeploy and transformers all load the way
they load a real checkpoint: config.json, safetensors weights, a fast tokenizer with a Qwen-style chat template and
generation_config.json. The tokenizer is a byte-level BPE trained in about a second on Python's own standard library
sources (present wherever Python is), so any token id decodes to text.

Needs torch, transformers and tokenizers; nothing of the project.
"""

import json
import sysconfig
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen's template reduced to what the knowledge base renders: system/user/assistant turns, and the generation prompt
# as Qwen3.5 writes it: an empty thinking block when enable_thinking is false, an open one otherwise.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{- '<think>\\n' }}{%- endif %}"
    "{%- endif %}"
)


def train_tokenizer(vocab_size: int = 4096):
    """A byte-level BPE tokenizer as transformers' PreTrainedTokenizerFast, with Qwen's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))

    def texts():
        for path in sources:
            yield path.read_text(encoding="utf-8", errors="replace")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )


def _save(model, tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    return folder


def _special_ids(tokenizer) -> dict[str, int]:
    return {
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }


def make_qwen3(
    folder: Path,
    *,
    hidden_size: int = 256,
    num_hidden_layers: int = 2,
    intermediate_size: int = 512,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    head_dim: int = 64,
    max_position_embeddings: int = 8192,
    vocab_size: int = 4096,
) -> Path:
    """A random-weight Qwen3 (text, full attention) in bfloat16: the shape every engine supports."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    tokenizer = train_tokenizer(vocab_size)
    config = Qwen3Config(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        intermediate_size=intermediate_size,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        vocab_size=len(tokenizer),
        tie_word_embeddings=False,
        architectures=["Qwen3ForCausalLM"],
        **_special_ids(tokenizer),
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return _save(model, tokenizer, folder)


def make_qwen35(
    folder: Path,
    *,
    hidden_size: int = 1024,
    num_hidden_layers: int = 24,
    intermediate_size: int = 3584,
    num_attention_heads: int = 8,
    num_key_value_heads: int = 2,
    head_dim: int = 256,
    max_position_embeddings: int = 262_144,
    vocab_size: int = 16384,
) -> Path:
    """A random-weight Qwen3.5 (Gated DeltaNet and full attention, 3:1) as Qwen publishes it: the multimodal
    `Qwen3_5ForConditionalGeneration`, with a one-block vision tower that text-only serving never loads.
    The defaults give about 0.65B parameters: hidden 1024, 24 layers (18 Gated DeltaNet, 6 full attention) and a
    16,384-token vocabulary (the real models have 248,320 entries; a random model must only emit ids its tokenizer
    can decode). Built on the CPU in about 20 s, 1.3 GB on disk."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    tokenizer = train_tokenizer(vocab_size)
    ids = _special_ids(tokenizer)
    config = Qwen3_5Config(
        text_config=dict(
            hidden_size=hidden_size,
            num_hidden_layers=num_hidden_layers,
            intermediate_size=intermediate_size,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            max_position_embeddings=max_position_embeddings,
            vocab_size=len(tokenizer),
            **ids,
        ),
        vision_config={
            "depth": 1,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=False,
        architectures=["Qwen3_5ForConditionalGeneration"],
    )
    torch.manual_seed(0)
    model = Qwen3_5ForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    return _save(model, tokenizer, folder)
