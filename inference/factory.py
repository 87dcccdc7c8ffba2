from inference.engine import Engine
from inference.llama_cpp import LlamaCppConfig
from inference.lmdeploy import LmdeployConfig
from inference.remote import RemoteConfig
from inference.vllm import VllmConfig

EngineConfig = LlamaCppConfig | VllmConfig | LmdeployConfig | RemoteConfig


def build_engine(config: EngineConfig) -> Engine:
    """Each backend's package is imported only when its engine is built: a CPU install has no vLLM or LMDeploy."""
    if isinstance(config, LlamaCppConfig):
        from inference.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(config)
    if isinstance(config, VllmConfig):
        from inference.vllm import VllmEngine

        return VllmEngine(config)
    if isinstance(config, LmdeployConfig):
        from inference.lmdeploy import LmdeployEngine

        return LmdeployEngine(config)
    if isinstance(config, RemoteConfig):
        from inference.remote import RemoteEngine

        return RemoteEngine(config)
    raise TypeError(f"no engine for {type(config).__name__}")
