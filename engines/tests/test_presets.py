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
    serving = serving_config_from_environ(
        {"KB_INFERENCE_ROUTE": f"{preset.name}={backend}", "KB_MODELS_DIR": str(tmp_path), **environ}
    )
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

    engine_config = engine_args(
        _engine_config(preset, "vllm", tmp_path, KB_VLLM_MAX_MODEL_LEN=str(preset.context_length))
    ).create_engine_config()

    assert engine_config.model_config.max_model_len == preset.context_length
    assert engine_config.cache_config.enable_prefix_caching is True


def test_the_cpu_preset_on_vllm_gets_a_fixed_kv_cache_no_graphs_and_its_own_context(tmp_path):
    config = _engine_config(PRESETS["smollm2-135m"], "vllm", tmp_path)

    args = engine_args(config)

    assert args.model == str(tmp_path / "SmolLM2-135M-Instruct")
    assert args.kv_cache_memory_bytes == 2 * 2**30  # not a share of host memory, which the CPU build refuses
    assert args.enforce_eager is True
    assert args.max_model_len == 8192  # SmolLM2's own maximum, below the GPU presets' default


@pytest.mark.parametrize("preset", QWEN35, ids=lambda preset: preset.name)
def test_gpu_presets_size_the_kv_cache_by_share_unless_told_in_gib(preset, tmp_path):
    by_share = engine_args(_engine_config(preset, "vllm", tmp_path))
    by_size = engine_args(_engine_config(preset, "vllm", tmp_path, KB_VLLM_KV_CACHE_GIB="12.5"))

    assert by_share.kv_cache_memory_bytes is None and by_share.gpu_memory_utilization == 0.90
    assert by_share.enforce_eager is False
    assert by_size.kv_cache_memory_bytes == round(12.5 * 2**30)


def test_vllm_takes_32_streams_at_once_unless_told_otherwise():
    default = serving_config_from_environ({"KB_INFERENCE_ROUTE": "smollm2-135m=vllm,qwen3.5-2b=lmdeploy"})
    told = serving_config_from_environ({"KB_INFERENCE_ROUTE": "qwen3.5-9b=vllm", "KB_INFERENCE_MAX_RUNNING": "4"})

    assert [entry.limits.max_running for entry in default.models] == [32, 8]
    assert told.models[0].limits.max_running == 4
