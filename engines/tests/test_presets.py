"""Every Qwen3.5 preset, as the serving configuration builds it from KB_INFERENCE_ROUTE, maps to engine objects that
the real vLLM and LMDeploy accept."""

import json

import pytest

from inference.config import DEFAULT_GPU_CONTEXT, serving_config_from_environ
from inference.lmdeploy import LmdeployConfig, backend_config, generation_config
from inference.registry import PRESETS
from inference.vllm import VllmConfig, engine_args, sampling_params

QWEN35 = [preset for preset in PRESETS.values() if preset.source.startswith("Qwen/Qwen3.5-")]


def test_the_registry_has_the_four_qwen35_models():
    assert sorted(preset.name for preset in QWEN35) == ["qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b"]


def _engine_config(preset, backend, tmp_path, **environ):
    serving = serving_config_from_environ({"KB_INFERENCE_ROUTE": f"{preset.name}={backend}",
                                           "KB_MODELS_DIR": str(tmp_path), **environ})
    (entry,) = serving.models
    return entry.engine


@pytest.mark.parametrize("preset", QWEN35, ids=lambda preset: preset.name)
def test_preset_maps_to_vllm_engine_args(preset, tmp_path):
    config = _engine_config(preset, "vllm", tmp_path)

    args = engine_args(config)

    assert isinstance(config, VllmConfig)
    assert args.model == str(tmp_path / preset.folder)
    assert args.max_model_len == DEFAULT_GPU_CONTEXT
    assert args.enable_prefix_caching is True
    assert args.limit_mm_per_prompt == {"image": 0, "video": 0}
    assert args.gdn_prefill_backend == "triton"
    assert sampling_params(preset.recommended).max_tokens == preset.recommended.max_tokens


@pytest.mark.parametrize("preset", QWEN35, ids=lambda preset: preset.name)
@pytest.mark.parametrize("backend", ["turbomind", "pytorch"])
def test_preset_maps_to_lmdeploy_configs(preset, backend, tmp_path):
    config = _engine_config(preset, "lmdeploy", tmp_path, KB_LMDEPLOY_BACKEND=backend)

    engine_config = backend_config(config)

    assert isinstance(config, LmdeployConfig)
    assert engine_config.session_len == DEFAULT_GPU_CONTEXT
    assert engine_config.language_model_only is True
    assert generation_config(preset.recommended).max_new_tokens == preset.recommended.max_tokens


@pytest.mark.parametrize("preset", QWEN35, ids=lambda preset: preset.name)
def test_vllm_accepts_the_presets_context_length(preset, tiny_qwen3, tmp_path):
    """vLLM cannot inspect a Qwen3.5 architecture without a GPU (its module imports torchvision), so a Qwen3
    stand-in with the preset's maximum position shows that vLLM takes the preset's full context when an operator
    asks for it (KB_VLLM_MAX_MODEL_LEN) and the rest."""
    config = json.loads((tiny_qwen3 / "config.json").read_text())
    config["max_position_embeddings"] = preset.context_length
    folder = tmp_path / preset.folder
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))

    engine_config = engine_args(_engine_config(preset, "vllm", tmp_path,
                                               KB_VLLM_MAX_MODEL_LEN=str(preset.context_length))).create_engine_config()

    assert engine_config.model_config.max_model_len == preset.context_length
    assert engine_config.cache_config.enable_prefix_caching is True
