# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""What a training loop measures between two log lines: losses, throughput, data waiting, time left."""

import datetime
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from tqdm.auto import tqdm

__all__ = ["TrainingMeter", "format_metrics"]

logger = get_logger(__name__)


def format_metrics(metrics: Mapping[str, float]) -> str:
    """
    Metrics as one log-line fragment, `name value | name value`, four decimals each.

    Args:
        metrics (`Mapping[str, float]`): Names and values.
    """
    return " | ".join(f"{name} {value:.4f}" for name, value in metrics.items())


class TrainingMeter:
    """
    The running measurements of a training loop between two log lines, and the progress bar.

    Per micro-step, `add_losses` adds each named loss to a running sum and count. Sums and counts live in one tensor
    that `log` reduces with a single `accelerator.reduce`: every process runs the same collective even when one of them
    had no batch with some loss (a batch without G2E edges has no G2E loss), and the mean of each loss is the sum over
    processes and micro-steps divided by the count, which for losses of the global batch is their mean over steps.

    Iterating the loader through `timed` measures how long each batch is waited for (creating the loader's iterator
    included), and the compute time from a batch's arrival to the end of its micro-step: `step` at an optimiser step,
    the request for the next batch otherwise. Evaluation and checkpointing after `step` count as neither. Samples per second are over the wall time of the
    interval, everything included; the ETA uses the mean step time since the meter was created.

    The progress bar (one per machine, on its local main process) counts optimiser steps; its postfix shows the
    samples per second of the last interval, and tqdm's own remaining time is the ETA.

    Args:
        accelerator (`Accelerator`): The run's accelerator.
        loss_names (`Sequence[str]`): The losses to average, in log order (e.g. `step.LOSS_NAMES`).
        max_steps (`int`): Optimiser steps of the whole run.
        global_batch_size (`int`): Samples per optimiser step over all processes and accumulation micro-steps.
        initial_step (`int`, *optional*, defaults to 0): Optimiser steps already done (after a resume).
        description (`str`, *optional*, defaults to `"training"`): The progress bar's label.

    Example:

    ```python
    meter = TrainingMeter(accelerator, LOSS_NAMES, max_steps, global_batch_size)
    for batch in meter.timed(dataloader):
        output = ...  # forward, backward, optimiser
        meter.add_losses(output)
        if accelerator.sync_gradients:
            global_step += 1
            meter.step()
            if global_step % logging_steps == 0:
                history.append(meter.log(global_step, epoch, {"lr": scheduler.get_last_lr()[0]}))
    meter.close()
    ```
    """

    def __init__(
        self,
        accelerator: Accelerator,
        loss_names: Sequence[str],
        max_steps: int,
        global_batch_size: int,
        initial_step: int = 0,
        description: str = "training",
    ):
        self.accelerator = accelerator
        self.loss_names = tuple(loss_names)
        self.max_steps = max_steps
        self.global_batch_size = global_batch_size
        # Row 0: sums of each loss, row 1: how many micro-steps produced it; on the device, so adding never syncs.
        self.loss_sums = torch.zeros(2, len(self.loss_names), device=accelerator.device)
        self.data_seconds = 0.0
        self.compute_seconds = 0.0
        self.start_time = time.perf_counter()
        self.steps_done = 0
        self.interval_start = self.start_time
        self.interval_steps = 0
        self._batch_arrival = None  # when the batch being worked on arrived; None once its compute time is counted
        self.progress = tqdm(
            total=max_steps,
            initial=initial_step,
            disable=not accelerator.is_local_main_process,
            desc=description,
            unit="step",
        )

    @property
    def elapsed_seconds(self) -> float:
        """Wall time since the meter was created."""
        return time.perf_counter() - self.start_time

    def timed(self, batches: Iterable) -> Iterator:
        """
        Yields the batches of `batches` unchanged, in order, timing the wait for each one and the work on it.

        Args:
            batches (`Iterable`): The (prepared) data loader, or what `skip_first_batches` returned.
        """
        request = time.perf_counter()
        iterator = iter(batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self._batch_arrival = time.perf_counter()
            self.data_seconds += self._batch_arrival - request
            yield batch
            request = time.perf_counter()
            if self._batch_arrival is not None:  # a micro-step that ended no optimiser step
                self.compute_seconds += request - self._batch_arrival
                self._batch_arrival = None

    def add_losses(self, losses: Mapping[str, torch.Tensor | None]) -> None:
        """
        Adds this micro-step's value of each of `loss_names` that `losses` holds (a model output works).

        Args:
            losses (`Mapping[str, torch.Tensor | None]`): Scalar tensors; absent or `None` names are skipped. Other
                keys are ignored.
        """
        for column, name in enumerate(self.loss_names):
            if losses.get(name) is not None:
                self.loss_sums[0, column] += losses[name].detach().float()
                self.loss_sums[1, column] += 1

    def step(self) -> None:
        """Marks the end of an optimiser step: ends the current batch's compute time and advances the bar."""
        if self._batch_arrival is not None:
            self.compute_seconds += time.perf_counter() - self._batch_arrival
            self._batch_arrival = None
        self.steps_done += 1
        self.interval_steps += 1
        self.progress.update(1)

    def log(self, step: int, epoch: int, values: Mapping[str, float] | None = None) -> dict:
        """
        Ends the interval: reduces the losses over processes, logs the record to the trackers and as one line on the
        main process, and starts the next interval. Every process must call it at the same step (it runs a collective).

        Args:
            step (`int`): The optimiser step just done; the trackers' x axis.
            epoch (`int`): The epoch being read.
            values (`Mapping[str, float]`, *optional*): More values of the record, placed after the losses (e.g.
                learning rates).

        Returns:
            `dict`: `step`, `epoch`, the mean of each loss that occurred in the interval, `values`,
            `samples_per_second` and `data_time_fraction` (waiting for data over waiting plus computing).
        """
        interval_seconds = time.perf_counter() - self.interval_start
        sums, counts = self.accelerator.reduce(self.loss_sums, reduction="sum").tolist()
        record = {"step": step, "epoch": epoch}
        record |= {name: total / count for name, total, count in zip(self.loss_names, sums, counts) if count}
        record |= dict(values or {})
        record |= {
            "samples_per_second": self.interval_steps * self.global_batch_size / interval_seconds,
            "data_time_fraction": self.data_seconds / max(self.data_seconds + self.compute_seconds, 1e-9),
        }
        # The step is the tracker's own axis; trackio reserves the name for it.
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
        losses = format_metrics({name: record[name] for name in self.loss_names if name in record})
        eta = datetime.timedelta(
            seconds=round((self.max_steps - step) * self.elapsed_seconds / max(self.steps_done, 1))
        )
        logger.info(
            f"step {step}/{self.max_steps} | {losses} | {record['samples_per_second']:.1f} samples/s | "
            f"data {self.data_seconds:.1f}s vs step {self.compute_seconds:.1f}s | ETA {eta}",
            main_process_only=True,
        )
        self.progress.set_postfix_str(f"{record['samples_per_second']:.1f} samples/s", refresh=False)
        self.loss_sums.zero_()
        self.data_seconds = self.compute_seconds = 0.0
        self.interval_start, self.interval_steps = time.perf_counter(), 0
        return record

    def close(self) -> None:
        """Closes the progress bar."""
        self.progress.close()
