# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`TrainingMeter`: loss means, samples per second, data-wait fraction and ETA, in one process and reduced over two."""

import json
import logging
import subprocess
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from training_utils import ACCELERATE, REPO, environment, free_port

from knowledge_clip.training import LOSS_NAMES, TrainingMeter
from knowledge_clip.training import meter as meter_module

# The keys of examples/pretrain.py's log record, in order (tests and plot_training_curves read them).
PRETRAIN_RECORD_KEYS = ["step", "epoch", "loss", "g2e_loss", "lr/towers", "logit_scale", "samples_per_second",
                        "data_time_fraction"]  # fmt: skip


class Clock:
    """A `time.perf_counter` that moves only when told."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_meter_values_in_one_process(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(meter_module, "time", SimpleNamespace(perf_counter=clock))
    accelerator = Accelerator(cpu=True)
    logged = []
    monkeypatch.setattr(accelerator, "log", lambda values, step: logged.append((step, values)))
    meter = TrainingMeter(accelerator, LOSS_NAMES, max_steps=10, global_batch_size=8, initial_step=3)

    def loader(num_batches):  # each batch takes 1 s to arrive
        for index in range(num_batches):
            clock.now += 1
            yield index

    batches = meter.timed(loader(2))
    # Optimiser step 4 (two micro-steps of 3 s of compute each): the second micro-step has no G2E loss, and names
    # that are not losses are ignored.
    assert next(batches) == 0
    clock.now += 3
    meter.add_losses({"loss": torch.tensor(2.0), "g2e_loss": torch.tensor(1.0), "logits": torch.ones(3)})
    assert next(batches) == 1
    clock.now += 3
    meter.add_losses({"loss": torch.tensor(4.0), "g2e_loss": None})
    meter.step()
    caplog.set_level(logging.INFO, logger=meter_module.__name__)
    record = meter.log(4, epoch=1, values={"lr/towers": 1e-5, "logit_scale": 100.0})
    assert list(record) == PRETRAIN_RECORD_KEYS
    assert record["loss"] == 3.0 and record["g2e_loss"] == 1.0
    assert record["samples_per_second"] == 8 / 8  # one step of 8 samples in 8 s
    assert record["data_time_fraction"] == 2 / 8
    assert logged == [(4, {k: v for k, v in record.items() if k != "step"})]
    # 6 steps left at 8 s per step so far.
    assert "step 4/10 | loss 3.0000 | g2e_loss 1.0000 | 1.0 samples/s | data 2.0s vs step 6.0s | ETA 0:00:48" in (
        caplog.text
    )
    assert next(batches, None) is None

    # Optimiser step 5 after 10 s of evaluation, which counts for the interval's throughput but not as waiting or
    # computing. The interval starts afresh: only this step's losses.
    clock.now += 10
    for _ in meter.timed(loader(1)):
        clock.now += 3
        meter.add_losses({"loss": torch.tensor(5.0), "kd_loss": torch.tensor(0.5)})
        meter.step()
        record = meter.log(5, epoch=1)
    assert {k: record[k] for k in ("loss", "kd_loss")} == {"loss": 5.0, "kd_loss": 0.5} and "g2e_loss" not in record
    assert record["samples_per_second"] == 8 / 14
    assert record["data_time_fraction"] == 1 / 4
    assert "ETA 0:00:55" in caplog.text  # 5 steps left at 22 s per 2 steps
    assert meter.progress.n == 5
    assert meter.elapsed_seconds == 22
    meter.close()


@pytest.mark.slow
def test_meter_reduces_over_two_processes_with_a_loss_missing_on_one(tmp_path):
    """Two gloo processes from `create_accelerator` (no ACCELERATE_USE_CPU: it sets `cpu` itself), one reduction."""
    command = [
        str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "tests" / "distributed_meter.py"), str(tmp_path),
    ]  # fmt: skip
    env = environment()
    env.pop("ACCELERATE_USE_CPU", None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [json.loads((tmp_path / f"record_{rank}.json").read_text()) for rank in range(2)]
    for output in outputs:
        assert output["distributed_type"] == "MULTI_CPU" and output["num_processes"] == 2
        record = output["record"]
        assert record["loss"] == pytest.approx((1 + 1 + 3) / 3)  # summed over processes and micro-steps
        assert record["g2e_loss"] == pytest.approx(2.0)  # from process 0 only
        assert "kd_loss" not in record
    assert outputs[0]["record"]["loss"] == outputs[1]["record"]["loss"]
