# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Exact resume: a run killed with SIGKILL (mid-training or mid-checkpoint) and resumed ends with the same weights."""

import os
import random
import re
import signal
import subprocess
import sys

import pytest
from training_utils import PRETRAIN, TINY_ARGS, environment, load_weights, max_weight_difference, run_pretrain

from knowledge_clip.training.checkpointing import KILL_BEFORE_RENAME_ENV, STATE_NAME, find_latest_checkpoint

MAX_STEPS = 14
# Dropout stays on (the fusion encoder's drop-path): the resumed run must also restore the RNG. A small per-device
# batch gives several epochs, so resuming crosses epoch boundaries too.
RUN_ARGS = [*TINY_ARGS, "--max_steps", str(MAX_STEPS), "--checkpointing_steps", "3", "--logging_steps", "1",
            "--eval_steps", "5", "--per_device_train_batch_size", "4", "--validation_fraction", "0.3",
            "--checkpoints_total_limit", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A shared demo world and stage-0 CLIP, and the uninterrupted run's final weights."""
    folder = tmp_path_factory.mktemp("resume")
    result = run_pretrain([*RUN_ARGS, "--output_dir", "uninterrupted"], cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, load_weights(folder / "uninterrupted")


@pytest.mark.slow
def test_kill_at_a_random_step_then_resume_latest(workspace):
    folder, reference = workspace
    kill_step = random.Random().randint(4, MAX_STEPS - 2)
    process = subprocess.Popen(
        [sys.executable, str(PRETRAIN), *RUN_ARGS, "--output_dir", "killed"],
        cwd=folder,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if re.search(rf"step {kill_step}/{MAX_STEPS} ", line):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"never saw step {kill_step}:\n{''.join(seen[-20:])}"
    assert not (folder / "killed" / "model.safetensors").exists()

    result = run_pretrain([*RUN_ARGS, "--output_dir", "killed", "--resume_from_checkpoint", "latest"], cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"Resumed from .*checkpoint-\d+ at step \d+", result.stderr), f"kill step {kill_step}"
    assert max_weight_difference(load_weights(folder / "killed"), reference) <= 1e-6, f"kill step {kill_step}"


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_keeps_latest_complete(workspace):
    folder, reference = workspace
    # Killed after save_state wrote checkpoint 6 to its temporary directory, before the rename.
    result = run_pretrain([*RUN_ARGS, "--output_dir", "torn"], cwd=folder, **{KILL_BEFORE_RENAME_ENV: "6"})
    assert result.returncode == -signal.SIGKILL
    checkpoints = folder / "torn" / "checkpoints"
    assert (checkpoints / ".tmp-checkpoint-6" / "model.safetensors").is_file()  # the torn write is there...
    assert find_latest_checkpoint(str(checkpoints)) == str(checkpoints / "checkpoint-3")  # ...but never picked
    assert (checkpoints / "checkpoint-3" / STATE_NAME).is_file()

    result = run_pretrain([*RUN_ARGS, "--output_dir", "torn", "--resume_from_checkpoint", "latest"], cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint-3 at step 3" in result.stderr
    assert max_weight_difference(load_weights(folder / "torn"), reference) <= 1e-6
    # Pruned after the last complete write: the newest two complete checkpoints, no leftovers.
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-12", "checkpoint-9"]


@pytest.mark.slow
def test_resume_from_an_incompatible_checkpoint_is_refused(workspace):
    folder, _ = workspace
    checkpoint = find_latest_checkpoint(str(folder / "uninterrupted" / "checkpoints"))
    args = [*RUN_ARGS, "--output_dir", "other", "--resume_from_checkpoint", checkpoint]
    result = run_pretrain([*args, "--per_device_train_batch_size", "5"], cwd=folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "incompatible with this run (different batch_layout)" in result.stderr.strip().splitlines()[-1]
