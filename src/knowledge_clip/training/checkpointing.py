# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Atomic, resumable training checkpoints on top of `accelerator.save_state`.

`save_state` (accelerate 1.15) writes straight into its target directory, so a process killed mid-write leaves a
partial checkpoint, and `load_state` loads one whose RNG files are missing with only an INFO log. accelerate's own
automatic naming is no safer: it deletes the oldest checkpoint before writing the new one. Here every checkpoint is
written to a hidden temporary directory, completed with a `trainer_state.json` marker, and only then renamed to
`checkpoint-<step>`; older checkpoints are pruned after the rename. `find_latest_checkpoint` only ever returns complete
checkpoints.
"""

import hashlib
import json
import os
import re
import shutil
import signal
from dataclasses import asdict, dataclass

from accelerate import Accelerator
from transformers import PreTrainedModel

from .errors import TrainingConfigurationError

__all__ = ["TrainerState", "find_latest_checkpoint", "load_checkpoint", "run_compatibility", "save_checkpoint"]

STATE_NAME = "trainer_state.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Testing hook: SIGKILL this process after `save_state` wrote the temporary directory of the checkpoint of this step
# but before it is renamed.
KILL_BEFORE_RENAME_ENV = "KNOWLEDGE_CLIP_KILL_BEFORE_CHECKPOINT_RENAME"


@dataclass
class TrainerState:
    """
    Where training stands: what `save_state` does not record.

    Args:
        global_step (`int`): Optimiser steps done.
        epoch (`int`): The epoch being read.
        batches_in_epoch (`int`): Per-process micro-batches of `epoch` already consumed (for `skip_first_batches`).
        compatibility (`dict`): What a resuming run must match: model shape, relation vocabulary and batch layout.
    """

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    compatibility: dict | None = None


def run_compatibility(
    model: PreTrainedModel, num_processes: int, per_device_train_batch_size: int, gradient_accumulation_steps: int
) -> dict:
    """
    What a checkpoint must share with this run to be resumed exactly: the weights' names and shapes, the relation
    vocabulary (the E2R classes, when the model's config has one) and the batch layout, which fixes the data order and
    the contrastive negatives of every step.

    Args:
        model (`PreTrainedModel`): The model, not wrapped.
        num_processes (`int`): Processes of the run (`accelerator.num_processes`).
        per_device_train_batch_size (`int`): Samples per process and micro-step.
        gradient_accumulation_steps (`int`): Micro-steps per optimiser step.

    Returns:
        `dict`: JSON-serialisable; `TrainerState.compatibility` and `load_checkpoint` compare it key by key.
    """
    shapes = "\n".join(f"{name}:{tuple(p.shape)}" for name, p in model.state_dict().items())
    return {
        "parameters": hashlib.sha256(shapes.encode()).hexdigest()[:16],
        "relation_vocab": list(getattr(model.config, "relation_vocab", None) or []),
        "batch_layout": [num_processes, per_device_train_batch_size, gradient_accumulation_steps],
    }


def _checkpoint_step(name: str) -> int | None:
    match = CHECKPOINT_PATTERN.match(name)
    return int(match.group(1)) if match else None


def find_latest_checkpoint(checkpoints_dir: str) -> str | None:
    """
    The complete checkpoint with the highest step in `checkpoints_dir`, or `None` when there is none.

    Args:
        checkpoints_dir (`str`): The directory holding `checkpoint-<step>` directories.
    """
    if not os.path.isdir(checkpoints_dir):
        return None
    complete = [
        (_checkpoint_step(name), name)
        for name in os.listdir(checkpoints_dir)
        if _checkpoint_step(name) is not None and os.path.isfile(os.path.join(checkpoints_dir, name, STATE_NAME))
    ]
    return os.path.join(checkpoints_dir, max(complete)[1]) if complete else None


def save_checkpoint(accelerator: Accelerator, checkpoints_dir: str, state: TrainerState, total_limit: int) -> str:
    """
    Saves model, optimizer, scheduler, RNG states and `state` as `checkpoints_dir/checkpoint-<step>`, atomically.

    Every process must call this (each writes its own RNG state). The frozen teacher is never prepared, so it is
    never part of a checkpoint.

    Args:
        accelerator (`Accelerator`): The run's accelerator.
        checkpoints_dir (`str`): Parent directory of the checkpoints.
        state (`TrainerState`): Step, epoch and data position to record.
        total_limit (`int`): Complete checkpoints to keep (the newest ones).

    Returns:
        `str`: The checkpoint's path.
    """
    final_dir = os.path.join(checkpoints_dir, f"checkpoint-{state.global_step}")
    staging_dir = os.path.join(checkpoints_dir, f".tmp-checkpoint-{state.global_step}")
    if accelerator.is_main_process:
        shutil.rmtree(staging_dir, ignore_errors=True)
        os.makedirs(staging_dir)
    accelerator.wait_for_everyone()
    accelerator.save_state(staging_dir)
    accelerator.wait_for_everyone()
    if os.environ.get(KILL_BEFORE_RENAME_ENV) == str(state.global_step):
        os.kill(os.getpid(), signal.SIGKILL)
    if accelerator.is_main_process:
        # The marker is written last inside the staging directory and the rename is atomic: a checkpoint-<step>
        # directory with a marker is always complete.
        with open(os.path.join(staging_dir, STATE_NAME), "w", encoding="utf-8") as file:
            json.dump(asdict(state), file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        shutil.rmtree(final_dir, ignore_errors=True)
        os.replace(staging_dir, final_dir)
        _prune(checkpoints_dir, keep=max(1, total_limit), newest=state.global_step)
    accelerator.wait_for_everyone()
    return final_dir


def _prune(checkpoints_dir: str, keep: int, newest: int) -> None:
    steps = sorted(
        step
        for name in os.listdir(checkpoints_dir)
        if (step := _checkpoint_step(name)) is not None
        and os.path.isfile(os.path.join(checkpoints_dir, name, STATE_NAME))
    )
    for step in steps[:-keep]:
        if step != newest:
            shutil.rmtree(os.path.join(checkpoints_dir, f"checkpoint-{step}"), ignore_errors=True)
    # Leftovers of writes that were killed, and incomplete directories, are never resumed from.
    for name in os.listdir(checkpoints_dir):
        path = os.path.join(checkpoints_dir, name)
        incomplete = _checkpoint_step(name) is not None and not os.path.isfile(os.path.join(path, STATE_NAME))
        if (name.startswith(".tmp-checkpoint-") and name != f".tmp-checkpoint-{newest}") or incomplete:
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(accelerator: Accelerator, checkpoint_dir: str, compatibility: dict) -> TrainerState:
    """
    Restores model, optimizer, scheduler and RNG states from a checkpoint and returns its `TrainerState`.

    Args:
        accelerator (`Accelerator`): The run's accelerator, after `prepare`.
        checkpoint_dir (`str`): A `checkpoint-<step>` directory.
        compatibility (`dict`): This run's model shape, relation vocabulary and batch layout.

    Raises:
        TrainingConfigurationError: with a one-line message when the checkpoint is incomplete or was written by an incompatible run.
    """
    state_path = os.path.join(checkpoint_dir, STATE_NAME)
    if not os.path.isfile(state_path):
        raise TrainingConfigurationError(
            f"--resume_from_checkpoint {checkpoint_dir}: not a complete checkpoint ({STATE_NAME} missing)."
        )
    with open(state_path, encoding="utf-8") as file:
        state = TrainerState(**json.load(file))
    saved = state.compatibility or {}
    differing = sorted(key for key in set(saved) | set(compatibility) if saved.get(key) != compatibility.get(key))
    if differing:
        raise TrainingConfigurationError(
            f"--resume_from_checkpoint {checkpoint_dir}: incompatible with this run (different {', '.join(differing)})."
        )
    accelerator.load_state(checkpoint_dir)
    return state
