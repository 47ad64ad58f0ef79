# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Helpers of the training tests: loading and launching the example scripts at tiny sizes, comparing saved weights."""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
PRETRAIN = REPO / "examples" / "pretrain.py"
ACCELERATE = Path(sys.executable).parent / "accelerate"


def load_example(name: str):
    """`examples/<name>.py` as a module (examples/ is not a package), executed afresh on every call."""
    spec = importlib.util.spec_from_file_location(f"knowledge_clip_example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The demo recipe at tiny sizes: the same code path as `accelerate launch examples/pretrain.py`, only smaller.
TINY_ARGS = [
    "--demo_size", "tiny",
    "--stage0_steps", "15",
    "--stage0_batch_size", "8",
    "--stage0_hidden_size", "32",
    "--stage0_image_size", "32",
    "--stage0_patch_size", "8",
    "--stage0_max_text_length", "16",
    "--stage0_vocab_size", "400",
    "--fusion_hidden_size", "32",
    "--fusion_num_heads", "4",
    "--fusion_intermediate_size", "64",
    "--per_device_train_batch_size", "6",
    "--per_device_eval_batch_size", "8",
    "--max_eval_batches", "1",
    "--report_to", "none",
    "--no_benchmark_demo_world",
]  # fmt: skip

# examples/finetune.py and examples/evaluate_model.py at tiny sizes (their tests add the steps and data they check).
TINY_FINETUNE_ARGS = ["--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--report_to", "none"]
TINY_EVALUATE_ARGS = ["--demo_size", "tiny", "--max_link_prediction_triplets", "3", "--batch_size", "16"]


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_pretrain(args: list[str], cwd: Path, launcher: str = "python", **env: str) -> subprocess.CompletedProcess:
    """Runs the script to completion (`launcher`: "python" or "accelerate"); output captured, not checked."""
    prefix = (
        [str(ACCELERATE), "launch", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no"]
        if launcher == "accelerate"
        else [sys.executable]
    )  # fmt: skip
    return subprocess.run(
        [*prefix, str(PRETRAIN), *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def load_weights(output_dir: Path) -> dict:
    return load_file(str(output_dir / "model.safetensors"))


def max_weight_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[name].double() - b[name].double()).abs().max().item() for name in a)
