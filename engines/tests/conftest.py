"""Fixtures of the engine contract tests. Nothing here imports Django or the project's tests/ package."""

import os
from pathlib import Path

import pytest

# Before vLLM is imported anywhere: it logs at INFO on import and while it builds configs.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

GPU = torch.cuda.is_available()

if not GPU:
    # With no GPU vLLM picks an "unspecified" platform whose empty device string makes create_engine_config() fail.
    # Its CPU platform lets the real config validation run. vLLM's modules bind `current_platform` when they are
    # imported, so this must happen before any of them is: here, when pytest loads this file.
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    vllm.platforms.current_platform = CpuPlatform()


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    """A random-weight Qwen3 folder (2 layers, 4,096-token vocabulary, 4,096-token context) with a locally trained
    tokenizer and a Qwen-style chat template: what vLLM and LMDeploy load like a real checkpoint."""
    from engines.tiny_models import make_qwen3

    return make_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3", max_position_embeddings=4096)
