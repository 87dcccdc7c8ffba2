"""LMDeploy in-process (pipeline): W4A16 and low VRAM. Written by the engines helper; see the issue."""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class LmdeployConfig:
    model_path: str
    backend: Literal["turbomind", "pytorch"] = "turbomind"
    tp: int = 1
    session_len: int | None = None
    cache_max_entry_count: float = 0.8
    model_format: str | None = None  # "awq" for W4A16 weights made with `lmdeploy lite auto_awq`
