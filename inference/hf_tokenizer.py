"""A Hugging Face model folder's own tokenizer and chat template, for the GPU engines (vLLM, LMDeploy)."""

from typing import Any

from inference.chat_template import ChatTemplate
from inference.types import EngineError


def hf_tokenizer_and_template(model_path: str) -> tuple[Any, ChatTemplate]:
    """The model folder's own tokenizer and chat template (tokenizer_config.json or chat_template.jinja)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    except Exception as error:
        raise EngineError(f"cannot load the tokenizer of {model_path}: {error}") from error
    source = tokenizer.chat_template
    if isinstance(source, dict):  # a folder may name several templates; the default one is for chat
        source = source.get("default")
    if not source:
        raise EngineError(f"{model_path} has no chat template (tokenizer_config.json or chat_template.jinja)")
    return tokenizer, ChatTemplate(source, bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "")
