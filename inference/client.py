"""The web and worker processes' side of the serving process: the `openai` client against our own server, presenting
the key the two share (inference.config.inference_api_key)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx

from inference.chat_template import ChatMessage
from inference.remote import api_error_message as _message
from inference.remote import completion_kwargs, usage_from_openai
from inference.types import Delta, EngineError, EngineUnavailable, GenerationParams, RequestRejected, Route

# Health and figures are asked by probes and pages that must answer quickly, whatever the serving process is doing.
PROBE_TIMEOUT_SECONDS = 5.0


class InferenceClient:
    def __init__(self, base_url: str, *, api_key: str, model: str = "auto", timeout_seconds: float = 600):
        from openai import AsyncOpenAI

        self.base_url = base_url.rstrip("/")
        self.model = model
        self._client = AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=api_key, timeout=timeout_seconds, max_retries=0
        )
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0, headers={"Authorization": f"Bearer {api_key}"})

    async def stream_chat(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        *,
        enable_thinking: bool = False,
        start_at: str | None = None,
    ) -> AsyncIterator[Delta]:
        from openai import APIConnectionError, APIStatusError, AuthenticationError, BadRequestError

        kwargs = completion_kwargs(params)
        kwargs["extra_body"]["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
        try:
            chunks = await self._client.chat.completions.create(
                model=start_at or self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
        except BadRequestError as error:
            raise RequestRejected(_message(error)) from error
        except AuthenticationError as error:
            raise EngineUnavailable(self._refused_key()) from error
        except APIStatusError as error:
            if error.status_code == 503:
                raise EngineUnavailable(_message(error)) from error
            raise EngineError(_message(error)) from error
        except APIConnectionError as error:
            raise EngineUnavailable(f"The model server at {self.base_url} does not answer.") from error
        async with chunks:
            try:
                async for chunk in chunks:
                    extra = chunk.model_extra or {}
                    if extra.get("error"):
                        raise EngineError(extra["error"].get("message", "the model server failed"))
                    if extra.get("kb_route"):
                        yield Delta(route=_route(extra["kb_route"], chunk.model))
                    if chunk.choices:
                        delta = chunk.choices[0].delta
                        thinking = (delta.model_extra or {}).get("reasoning_content")
                        if thinking:
                            yield Delta(text=thinking, channel="thinking")
                        if delta.content:
                            yield Delta(text=delta.content)
                    if chunk.usage is not None:
                        yield Delta(usage=usage_from_openai(chunk.usage))
            except APIConnectionError as error:
                raise EngineError(f"The model server at {self.base_url} went away mid-answer.") from error

    def count_tokens(self, text: str) -> int:
        return int(self._post("/tokenize", {"prompt": text})["count"])

    def describe(self) -> list[dict[str, Any]]:
        return self._response(lambda: self._http.get("/v1/models")).json()["data"]

    def readiness(self) -> dict[str, Any]:
        # Not ready is an answer too: /ready says so with 503 and the same JSON.
        response = self._response(
            lambda: self._http.get("/ready", timeout=PROBE_TIMEOUT_SECONDS), also_acceptable=(503,)
        )
        return response.json()

    def metrics_exposition(self) -> str:
        return self._response(lambda: self._http.get("/metrics", timeout=PROBE_TIMEOUT_SECONDS)).text

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._response(lambda: self._http.post(path, json=payload)).json()

    def _response(self, request, *, also_acceptable: tuple[int, ...] = ()) -> httpx.Response:
        try:
            response = request()
            if response.status_code == 401:
                raise EngineUnavailable(self._refused_key())
            if response.status_code not in also_acceptable:
                response.raise_for_status()
        except httpx.HTTPError as error:
            raise EngineUnavailable(f"The model server at {self.base_url} does not answer.") from error
        return response

    def _refused_key(self) -> str:
        return (
            f"The model server at {self.base_url} refused this process's API key: web, worker and serving processes "
            "need the same KB_INFERENCE_API_KEY, or the same KB_VAR_DIR (its inference-api-key file)."
        )

    async def close(self) -> None:
        await self._client.close()
        self._http.close()


def _route(described: dict[str, Any], model: str) -> Route:
    return Route(
        model=described.get("model") or model,
        backend=described.get("backend", "served"),
        skipped=tuple(described.get("skipped", ())),
    )
