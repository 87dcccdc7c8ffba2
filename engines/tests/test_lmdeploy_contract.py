"""inference/lmdeploy.py against the real LMDeploy 0.18.0: our settings become LMDeploy's config objects, and the
settings LMDeploy would take silently (or check with `assert` only) fail with our ValueError."""

import pytest
from lmdeploy import GenerationConfig, PytorchEngineConfig, TurbomindEngineConfig

from inference.lmdeploy import LmdeployConfig, StopStrings, backend_config, generation_config
from inference.types import GenerationParams


def test_turbomind_config_carries_every_setting(tmp_path):
    config = backend_config(
        LmdeployConfig(
            model_path=str(tmp_path),
            backend="turbomind",
            tp=2,
            session_len=32768,
            cache_max_entry_count=0.5,
            model_format="awq",
        )
    )

    assert type(config) is TurbomindEngineConfig
    assert config.tp == 2
    assert config.session_len == 32768
    assert config.cache_max_entry_count == 0.5
    assert config.model_format == "awq"
    assert config.enable_prefix_caching is True  # RAG prompts share long prefixes
    assert config.language_model_only is True  # Qwen3.5's vision encoder is not loaded


def test_pytorch_config_carries_every_setting(tmp_path):
    config = backend_config(
        LmdeployConfig(
            model_path=str(tmp_path),
            backend="pytorch",
            tp=1,
            session_len=8192,
            cache_max_entry_count=0.3,
            enable_prefix_caching=False,
            text_only=False,
        )
    )

    assert type(config) is PytorchEngineConfig
    assert config.tp == 1
    assert config.session_len == 8192
    assert config.cache_max_entry_count == 0.3
    assert config.model_format is None
    assert config.enable_prefix_caching is False
    assert config.language_model_only is False


def test_session_length_defaults_to_the_models_own(tmp_path):
    assert backend_config(LmdeployConfig(model_path=str(tmp_path))).session_len is None


def test_pytorch_backend_takes_fp8_quantization_on_load(tmp_path):
    config = backend_config(LmdeployConfig(model_path=str(tmp_path), backend="pytorch", model_format="fp8"))

    assert config.model_format == "fp8"


def test_lmdeploy_itself_takes_any_turbomind_model_format():
    """Why backend_config checks model_format: LMDeploy would only fail once it converts the weights."""
    assert TurbomindEngineConfig(model_format="nonsense").model_format == "nonsense"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "tensorrt"}, "backend must be one of turbomind, pytorch"),
        ({"model_format": "nonsense"}, "model_format for TurboMind must be one of"),
        ({"backend": "pytorch", "model_format": "awq"}, "reads the quantization of AWQ/GPTQ weights from their config"),
        ({"tp": 0}, "tp .* must be at least 1"),
        ({"session_len": 0}, "session_len must be positive"),
        ({"cache_max_entry_count": 1.5}, "cache_max_entry_count is the fraction of free GPU memory"),
        ({"cache_max_entry_count": 0.0}, "cache_max_entry_count"),
        ({"backend": "pytorch", "cache_max_entry_count": 1.0}, "cache_max_entry_count"),
        ({"model_path": ""}, "model_path is empty"),
    ],
)
def test_bad_settings_fail_with_our_message(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        backend_config(LmdeployConfig(**{"model_path": str(tmp_path), **settings}))


def test_generation_config_carries_every_setting():
    config = generation_config(
        GenerationParams(
            temperature=0.7,
            top_p=0.8,
            top_k=20,
            max_tokens=300,
            repetition_penalty=1.1,
            seed=7,
            stop=("\n\nQuestion:",),
        )
    )

    assert isinstance(config, GenerationConfig)
    assert config.do_sample is True
    assert config.temperature == 0.7
    assert config.top_p == 0.8
    assert config.top_k == 20
    assert config.max_new_tokens == 300
    assert config.repetition_penalty == 1.1
    assert config.random_seed == 7
    assert config.stop_words is None  # stop strings are cut by LmdeployEngine.stream; see the test below


def test_temperature_zero_decodes_greedily():
    config = generation_config(GenerationParams(temperature=0.0, max_tokens=1))

    assert config.do_sample is False
    assert config.max_new_tokens == 1


def test_no_top_k_limit_is_zero_for_lmdeploy():
    assert generation_config(GenerationParams(top_k=-1)).top_k == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": 2.5}, "temperature must be within"),
        ({"temperature": -1.0}, "temperature must be within"),
        ({"top_p": 1.5}, "top_p must be within"),
        ({"top_p": 0.0}, "top_p must be within"),
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be positive"),
    ],
)
def test_out_of_range_sampling_fails_with_our_message(settings, message):
    """LMDeploy checks these with `assert` only, which `python -O` removes."""
    with pytest.raises(ValueError, match=message):
        generation_config(GenerationParams(**settings))


def test_lmdeploy_cannot_stop_on_a_string_of_several_tokens(tiny_qwen3):
    """Why stop strings are not handed to LMDeploy: it turns stop words into single token ids, and drops the rest."""
    from lmdeploy.tokenizer import Tokenizer

    tokenizer = Tokenizer(str(tiny_qwen3))

    assert len(tokenizer.encode("\n\nQuestion:", add_bos=False)) > 1
    assert tokenizer.indexes_containing_token("\n\nQuestion:") == []


def test_stop_strings_cut_the_text_before_the_first_stop():
    stops = StopStrings(("\n\nQuestion:", "</answer>"))

    pieces = [stops.feed(piece) for piece in ["The answer", " is 42.", "\n", "\nQues", "tion: and more"]]

    assert "".join(pieces) == "The answer is 42."
    assert stops.stopped


def test_stop_strings_release_held_text_that_was_not_a_stop():
    stops = StopStrings(("</answer>",))

    text = stops.feed("a </ans") + stops.feed("wer? no") + stops.feed(" <") + stops.flush()

    assert text == "a </answer? no <"
    assert not stops.stopped


def test_without_stop_strings_text_passes_at_once():
    stops = StopStrings(())

    assert stops.feed("abc") == "abc"
    assert stops.flush() == ""
