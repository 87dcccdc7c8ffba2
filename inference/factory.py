from inference.engine import Engine
from inference.llama_cpp import LlamaCppConfig

EngineConfig = LlamaCppConfig


def build_engine(config: EngineConfig) -> Engine:
    if isinstance(config, LlamaCppConfig):
        from inference.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(config)
    raise TypeError(f"no engine for {type(config).__name__}")
