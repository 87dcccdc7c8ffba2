from dataclasses import dataclass
from typing import TypedDict

from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatMessage(TypedDict):
    role: str
    content: str


@dataclass(frozen=True)
class ChatTemplate:
    """The model's own Jinja chat template, rendered the way Hugging Face tokenizers render it.

    Qwen3.5 templates read `enable_thinking`; templates that do not know the variable ignore it.
    """

    source: str
    bos_token: str = ""
    eos_token: str = ""

    def render(
        self,
        messages: list[ChatMessage],
        *,
        enable_thinking: bool = False,
        add_generation_prompt: bool = True,
    ) -> str:
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = _raise_template_error
        return environment.from_string(self.source).render(
            messages=messages,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
        )


def _raise_template_error(message: str) -> None:
    raise ValueError(f"chat template refused the conversation: {message}")
