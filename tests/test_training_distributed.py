# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Two processes with the global-batch losses give the losses and gradients of one process on the whole batch."""

import json
import subprocess
import sys

import pytest
import torch
from tiny import tiny_tokenizer
from training_utils import ACCELERATE, PRETRAIN, REPO, TINY_ARGS, environment, free_port

from knowledge_clip.data.demo_world import build_demo_world

STEP_SCRIPT = REPO / "tests" / "distributed_step.py"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run on the concatenated global batch."""
    folder = tmp_path_factory.mktemp("distributed")
    world = build_demo_world(folder / "world", seed=0, size="tiny").root
    tiny_tokenizer().save_pretrained(folder / "tokenizer")
    inputs = (str(world), str(folder / "tokenizer"))
    out = folder / "single.pt"
    result = subprocess.run(
        [sys.executable, str(STEP_SCRIPT), *inputs, str(out)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return inputs, folder, torch.load(out)


def run_two_processes(inputs, out, *extra):
    command = [
        str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
        str(STEP_SCRIPT), *inputs, str(out), *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=environment(ACCELERATE_USE_CPU="1"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out)


def differences(a, b):
    """Largest loss difference, and largest gradient difference relative to its tensor's scale (at least 1).

    Gradients are float32 sums taken in another order by two processes: a tensor whose entries reach ~20 differs by
    ~5e-6 (2.5e-7 relative, float32 rounding), so an absolute 1e-5 would test the magnitude, not the method.
    """
    loss_difference = max(abs(a["losses"][name] - b["losses"][name]) for name in a["losses"])
    gradient_difference = max(
        ((a["gradients"][n] - b["gradients"][n]).abs().max() / a["gradients"][n].abs().max().clamp(min=1)).item()
        for n in a["gradients"]
    )
    return loss_difference, gradient_difference


@pytest.mark.slow
def test_two_processes_equal_one_on_the_global_batch(reference):
    inputs, folder, single = reference
    double = run_two_processes(inputs, folder / "double.pt")
    assert set(double["losses"]) == set(single["losses"]) == {"loss", "e2e_loss", "e2r_loss", "g2e_loss", "kd_loss"}
    assert double["gradients"].keys() == single["gradients"].keys()
    assert all(single["losses"][name] > 0 for name in single["losses"])
    # Every parameter group is exercised: the towers, the fusion encoder and both heads receive gradient.
    for prefix in ("vision_model.", "text_model.", "fusion_encoder.", "relation_head.", "graph_head.", "logit_scale"):
        assert any(g.abs().sum() > 0 for n, g in single["gradients"].items() if n.startswith(prefix)), prefix
    loss_difference, gradient_difference = differences(single, double)
    assert loss_difference < 1e-5
    assert gradient_difference < 1e-5


@pytest.mark.slow
def test_local_losses_do_not_equal_the_global_batch(reference):
    inputs, folder, single = reference
    local = run_two_processes(inputs, folder / "local.pt", "--no_loss_gather")
    loss_difference, gradient_difference = differences(single, local)
    assert loss_difference > 1e-3 and gradient_difference > 1e-4


@pytest.mark.slow
def test_pretrain_script_runs_with_two_processes(tmp_path):
    """The recipe itself under `accelerate launch --multi_gpu --num_processes 2` (gloo): steps, a checkpoint, the
    final save and the teardown all complete."""
    args = [*TINY_ARGS, "--max_steps", "4", "--logging_steps", "2", "--checkpointing_steps", "2"]
    command = [
        str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
        str(PRETRAIN), *args,
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=environment(ACCELERATE_USE_CPU="1"), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MULTI_CPU with 2 process(es)" in result.stderr
    assert "(6 per process x 2 processes x 1 accumulation)" in result.stderr
    output = tmp_path / "knowledge-clip-demo"
    assert json.loads((output / "metrics.json").read_text())["global_step"] == 4
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
