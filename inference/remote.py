"""Any OpenAI-compatible server: `vllm serve`, `lmdeploy serve api_server`, Ollama, or our own `python -m inference`.

The prompt arrives rendered with the model's own template, so it goes to /v1/completions as text. The template
comes from the configured file (a tokenizer_config.json or a .jinja file from the model's folder) or, from our own
server, from its model list.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inference.chat_template import ChatTemplate
from inference.types import Delta, EngineError, EngineInfo, GenerationParams, RequestRejected, Usage


@dataclass(frozen=True, kw_only=True)
class RemoteConfig:
    base_url: str  # up to and including /v1
    model: str
    api_key: str  # the server's key: every process boundary is authenticated
    chat_template_path: str = ""
    context_length: int = 0  # 0: ask the server (our server and vLLM say it); else as configured
    timeout_seconds: float = 600.0


def completion_kwargs(params: GenerationParams) -> dict[str, Any]:
    """Neutral parameters as the OpenAI client takes them; top_k and repetition_penalty are vLLM's extensions."""
    kwargs: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "extra_body": {"top_k": params.top_k, "repetition_penalty": params.repetition_penalty},
    }
    if params.seed is not None:
        kwargs["seed"] = params.seed
    if params.stop:
        kwargs["stop"] = list(params.stop)
    return kwargs


class RemoteEngine:
    def __init__(self, config: RemoteConfig) -> None:
        from openai import AsyncOpenAI

        self.config = config
        self._client = AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key, timeout=config.timeout_seconds, max_retries=0
        )
        self._http = httpx.Client(
            base_url=config.base_url.removesuffix("/v1").rstrip("/"),
            timeout=30.0,
            headers={"Authorization": f"Bearer {config.api_key}"},
        )
        described = self._describe()
        self.chat_template = (
            _template_from_file(config.chat_template_path)
            if config.chat_template_path
            else (_template_from_description(described, config))
        )
        self.info = EngineInfo(
            model=config.model,
            backend="remote",
            context_length=config.context_length or int(described.get("max_model_len") or 0),
            details={"base_url": config.base_url},
        )
        self.load_seconds = 0.0

    def _describe(self) -> dict[str, Any]:
        try:
            response = self._http.get("/v1/models")
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise EngineError(f"the model server at {self.config.base_url} does not answer: {error}") from error
        for model in response.json().get("data", []):
            if model.get("id") == self.config.model:
                return model
        raise EngineError(f"the model server at {self.config.base_url} does not serve {self.config.model!r}")

    def count_tokens(self, text: str) -> int:
        """vLLM's and our server's /tokenize; the count is the model's own, not an estimate."""
        try:
            response = self._http.post(
                "/tokenize", json={"model": self.config.model, "prompt": text, "add_special_tokens": False}
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise EngineError(f"the model server could not count tokens: {error}") from error
        return int(response.json()["count"])

    async def stream(self, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        from openai import APIConnectionError, APIStatusError, BadRequestError

        try:
            chunks = await self._client.completions.create(
                model=self.config.model,
                prompt=prompt,
                stream=True,
                stream_options={"include_usage": True},
                **completion_kwargs(params),
            )
            usage = None
            async with chunks:
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].text:
                        yield Delta(text=chunk.choices[0].text)
                    if chunk.usage is not None:
                        usage = usage_from_openai(chunk.usage)
        except BadRequestError as error:
            raise RequestRejected(f"the model server refused the request: {api_error_message(error)}") from error
        except (APIConnectionError, APIStatusError) as error:
            raise EngineError(
                f"the model server at {self.config.base_url} failed: {api_error_message(error)}"
            ) from error
        yield Delta(usage=usage or Usage(prompt_tokens=0, completion_tokens=0))

    async def close(self) -> None:
        await self._client.close()
        self._http.close()


def api_error_message(error: Exception) -> str:
    """The server's own words from an OpenAI-style error body, else the client's."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or (body.get("error") or {}).get("message") or error)
    return str(error)


def usage_from_openai(usage: Any) -> Usage:
    """The `usage` of an OpenAI-compatible response, with the prompt tokens it read from its cache where it says."""
    details = usage.prompt_tokens_details
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=details.cached_tokens if details else None,
    )


def _template_from_file(path: str) -> ChatTemplate:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        config = json.loads(text)
        return ChatTemplate(
            config["chat_template"],
            bos_token=_token(config.get("bos_token")),
            eos_token=_token(config.get("eos_token")),
        )
    return ChatTemplate(text)


def _token(value: Any) -> str:
    return value.get("content", "") if isinstance(value, dict) else (value or "")


def _template_from_description(described: dict[str, Any], config: RemoteConfig) -> ChatTemplate:
    template = described.get("chat_template")
    if not template:
        raise EngineError(
            f"{config.model!r} at {config.base_url} does not publish its chat template; set chat_template_path to "
            "the model's tokenizer_config.json"
        )
    return ChatTemplate(
        template["source"], bos_token=template.get("bos_token", ""), eos_token=template.get("eos_token", "")
    )
