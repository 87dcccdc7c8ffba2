"""`python -m inference`: the model-serving process (see inference/server.py)."""

import logging
import os
from dataclasses import replace

import uvicorn

from inference.config import inference_api_key, serving_config_from_environ, var_dir_from_environ
from inference.server import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # vLLM starts worker processes; forking a process that already runs threads (our loader) is unsafe.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    try:
        config = serving_config_from_environ()
    except (KeyError, ValueError) as error:  # an unknown preset, a backend it cannot run on, a malformed number
        raise SystemExit(f"inference: cannot start with these settings: {error}") from None
    # Only the app's processes may call it: they share this key (the operator's, or var/inference-api-key).
    try:
        api_key = inference_api_key(var_dir_from_environ(), given=os.environ.get("KB_INFERENCE_API_KEY", ""))
    except (OSError, ValueError) as error:
        raise SystemExit(f"inference: cannot read or make its API key: {error}") from None
    config = replace(config, api_key=api_key)
    # Graceful shutdown: on SIGTERM uvicorn stops accepting, lets running streams finish (up to the timeout),
    # then the app's lifespan closes the engines.
    uvicorn.run(create_app(config), host=config.host, port=config.port, timeout_graceful_shutdown=30, log_level="info")


if __name__ == "__main__":
    main()
