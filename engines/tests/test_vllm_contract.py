"""inference/vllm.py against the real vLLM 0.25.1: our settings become vLLM's objects, and vLLM's own validation sees
our values (create_engine_config is what AsyncLLM.from_engine_args runs first, before any weight is loaded)."""

import dataclasses
import json
import typing

import pytest
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.sampling_params import RequestOutputKind

from inference.types import GenerationParams
from inference.vllm import GDN_PREFILL_BACKENDS, VllmConfig, engine_args, sampling_params


def test_engine_args_carry_every_setting(tmp_path):
    args = engine_args(
        VllmConfig(
            model_path=str(tmp_path),
            tensor_parallel_size=2,
            gpu_memory_utilization=0.85,
            max_model_len=32768,
            quantization="awq",
            enforce_eager=True,
            kv_cache_memory_bytes=2**30,
        )
    )

    assert isinstance(args, AsyncEngineArgs)
    assert args.model == str(tmp_path)
    assert args.tensor_parallel_size == 2
    assert args.gpu_memory_utilization == 0.85
    assert args.max_model_len == 32768
    assert args.quantization == "awq"
    assert args.enforce_eager is True
    assert args.kv_cache_memory_bytes == 2**30


def test_engine_args_default_to_prefix_caching_text_only_and_the_triton_gdn_kernel(tmp_path):
    args = engine_args(VllmConfig(model_path=str(tmp_path)))

    assert args.enable_prefix_caching is True  # RAG prompts share long prefixes
    assert args.limit_mm_per_prompt == {"image": 0, "video": 0}  # Qwen3.5's vision encoder is not loaded
    assert args.gdn_prefill_backend == "triton"
    assert args.max_model_len is None  # vLLM takes the model's own maximum
    assert args.quantization is None


def test_engine_args_can_turn_prefix_caching_and_text_only_off(tmp_path):
    args = engine_args(
        VllmConfig(model_path=str(tmp_path), enable_prefix_caching=False, text_only=False, gdn_prefill_backend=None)
    )

    assert args.enable_prefix_caching is False
    assert args.limit_mm_per_prompt == {}
    assert args.gdn_prefill_backend is None


def test_our_gdn_prefill_backends_are_vllms():
    """vLLM's dataclass does not check the Literal it declares; engine_args does, with vLLM's list."""
    (field,) = [field for field in dataclasses.fields(AsyncEngineArgs) if field.name == "gdn_prefill_backend"]
    declared = {value for member in typing.get_args(field.type) for value in typing.get_args(member)}

    assert set(GDN_PREFILL_BACKENDS) == declared


def test_extra_engine_args_reach_vllm(tmp_path):
    args = engine_args(VllmConfig(model_path=str(tmp_path), extra_engine_args={"max_num_seqs": 64, "seed": 3}))

    assert args.max_num_seqs == 64
    assert args.seed == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"extra_engine_args": {"max_num_sequences": 64}}, "no engine argument named max_num_sequences"),
        ({"extra_engine_args": {"max_model_len": 1024}}, "max_model_len is set by VllmConfig.max_model_len"),
        ({"extra_engine_args": {"limit_mm_per_prompt": {"image": 1}}}, "limit_mm_per_prompt is set by .*text_only"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size must be at least 1"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization"),
        ({"max_model_len": 0}, "max_model_len must be positive"),
        ({"kv_cache_memory_bytes": 0}, "kv_cache_memory_bytes must be positive"),
        ({"gdn_prefill_backend": "cuda"}, "gdn_prefill_backend must be one of"),
    ],
)
def test_bad_settings_fail_with_our_message(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        engine_args(VllmConfig(model_path=str(tmp_path), **settings))


def test_vllm_builds_the_engine_config_from_our_settings(tiny_qwen3):
    config = engine_args(
        VllmConfig(model_path=str(tiny_qwen3), max_model_len=2048, gpu_memory_utilization=0.5, enforce_eager=True)
    ).create_engine_config()

    assert config.model_config.max_model_len == 2048
    assert config.model_config.architectures == ["Qwen3ForCausalLM"]
    assert config.model_config.enforce_eager is True
    assert config.cache_config.enable_prefix_caching is True
    assert config.cache_config.gpu_memory_utilization == 0.5
    assert config.parallel_config.tensor_parallel_size == 1
    assert config.additional_config["gdn_prefill_backend"] == "triton"


def test_vllm_takes_a_kv_cache_given_in_bytes(tiny_qwen3):
    engine_config = engine_args(
        VllmConfig(model_path=str(tiny_qwen3), max_model_len=2048, kv_cache_memory_bytes=3 * 2**30)
    ).create_engine_config()

    assert engine_config.cache_config.kv_cache_memory_bytes == 3 * 2**30


def test_vllm_takes_the_models_own_context_length_by_default(tiny_qwen3):
    config = engine_args(VllmConfig(model_path=str(tiny_qwen3))).create_engine_config()

    assert config.model_config.max_model_len == 4096  # max_position_embeddings of the tiny model


def test_vllm_refuses_a_context_beyond_the_models(tiny_qwen3):
    with pytest.raises(ValueError, match=r"max_model_len \(8192\) is greater than the derived max_model_len"):
        engine_args(VllmConfig(model_path=str(tiny_qwen3), max_model_len=8192)).create_engine_config()


def test_vllm_refuses_an_unknown_quantization(tiny_qwen3):
    with pytest.raises(ValueError, match="Unknown quantization method: w3a7"):
        engine_args(VllmConfig(model_path=str(tiny_qwen3), quantization="w3a7")).create_engine_config()


def test_vllm_refuses_awq_for_weights_that_are_not_awq(tiny_qwen3):
    with pytest.raises(ValueError, match="Cannot find the config file for awq"):
        engine_args(VllmConfig(model_path=str(tiny_qwen3), quantization="awq")).create_engine_config()


def test_vllm_accepts_awq_for_awq_weights(tiny_qwen3, tmp_path):
    config = json.loads((tiny_qwen3 / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "zero_point": True,
        "version": "gemm",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))

    engine_config = engine_args(VllmConfig(model_path=str(tmp_path), quantization="awq")).create_engine_config()

    assert engine_config.model_config.quantization == "awq"


def test_sampling_params_carry_every_setting():
    params = sampling_params(
        GenerationParams(
            temperature=0.7,
            top_p=0.8,
            top_k=20,
            max_tokens=300,
            repetition_penalty=1.1,
            seed=7,
            stop=("\n\nQuestion:", "</answer>"),
        )
    )

    assert isinstance(params, SamplingParams)
    assert params.temperature == 0.7
    assert params.top_p == 0.8
    assert params.top_k == 20
    assert params.max_tokens == 300
    assert params.repetition_penalty == 1.1
    assert params.seed == 7
    assert params.stop == ["\n\nQuestion:", "</answer>"]
    assert params.output_kind is RequestOutputKind.DELTA  # each output holds only the new text
    assert params.n == 1


def test_sampling_params_defaults_are_qwen35s_recommended_ones_and_no_seed():
    params = sampling_params(GenerationParams())

    assert (params.temperature, params.top_p, params.top_k, params.max_tokens) == (1.0, 0.95, 40, 2048)
    assert params.seed is None
    assert params.stop == []


def test_temperature_zero_is_greedy_for_vllm():
    params = sampling_params(GenerationParams(temperature=0.0, max_tokens=1))

    assert params.temperature == 0.0
    assert params.max_tokens == 1


@pytest.mark.parametrize("settings", [{"top_p": 1.5}, {"temperature": -1.0}, {"max_tokens": 0}])
def test_vllm_refuses_out_of_range_sampling_with_a_value_error(settings):
    with pytest.raises(ValueError, match="."):
        sampling_params(GenerationParams(**settings))
