"""vLLM in-process (AsyncLLM): high-concurrency GPU serving. Written by the engines helper; see the issue."""

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class VllmConfig:
    model_path: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.90
    max_model_len: int | None = None
    quantization: str | None = None
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    extra_engine_args: dict = field(default_factory=dict)
