# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The `Accelerator` of a training script, its trackers and their hyper-parameters."""

import importlib.util
import logging
import os
from collections.abc import Sequence

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration

from .errors import TrainingConfigurationError

__all__ = ["TRACKER_MODULES", "available_trackers", "create_accelerator", "flat_config"]

logger = get_logger(__name__)

TRACKER_MODULES = {"tensorboard": "tensorboard", "trackio": "trackio"}
"""The trackers `--report_to` accepts, with the module each needs installed."""


def available_trackers(report_to: Sequence[str]) -> list[str]:
    """
    The requested trackers that are installed. accelerate would only warn about a missing one and then log nothing
    there, so a missing tracker is named in a warning here, with the command that installs it.

    Args:
        report_to (`Sequence[str]`): Tracker names (`tensorboard`, `trackio`); `none` turns them all off.

    Returns:
        `list[str]`: The installed trackers, in the order requested; empty for none.

    Raises:
        TrainingConfigurationError: for an unknown tracker name.
    """
    wanted = [name for name in report_to if name != "none"]
    unknown = [name for name in wanted if name not in TRACKER_MODULES]
    if unknown:
        raise TrainingConfigurationError(
            f"--report_to: unknown tracker(s) {unknown}; expected tensorboard, trackio or none."
        )
    missing = [name for name in wanted if importlib.util.find_spec(TRACKER_MODULES[name]) is None]
    if missing:
        # Plain logging: this runs before the Accelerator exists, which accelerate's logger requires.
        logging.getLogger(__name__).warning(
            f"--report_to: {missing} not installed, not logging there (pip install {' '.join(missing)})."
        )
    return [name for name in wanted if name not in missing]


def create_accelerator(
    output_dir: str,
    mixed_precision: str | None = None,
    gradient_accumulation_steps: int = 1,
    trackers: Sequence[str] = (),
    find_unused_parameters: bool = True,
) -> Accelerator:
    """
    The `Accelerator` of a training run, with logging set up for every process.

    - `cpu=True` when CUDA is absent: accelerate 1.15 chooses multi-process CPU training (gloo) only when `cpu` is
      truthy. Without it, `accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine starts two
      independent single-process runs, without any error, that race on the same output files.
    - A seedable sampler: resuming inside an epoch other than the first reproduces the data order only with it (and
      `set_epoch` on the prepared loader before `skip_first_batches`).
    - DDP's `find_unused_parameters`: a Knowledge-CLIP batch may leave whole modules without gradient (text-only
      ConceptNet triplets never reach the vision tower), which DDP otherwise reports as an error.
    - `output_dir` is the project directory and `output_dir/logs` the trackers' logging directory.
    - Log records of level INFO and above from the main process; WARNING and above from the others.

    Args:
        output_dir (`str`): The run's output directory.
        mixed_precision (`str`, *optional*): `no`, `bf16` or `fp16`; `accelerate launch`/`accelerate config`
            decide when unset.
        gradient_accumulation_steps (`int`, *optional*, defaults to 1): Micro-steps per optimiser step, for
            `accelerator.accumulate`.
        trackers (`Sequence[str]`, *optional*): Installed trackers to log to (`available_trackers`); none when empty.
        find_unused_parameters (`bool`, *optional*, defaults to `True`): Passed to DDP; `False` only for a model
            whose every parameter receives gradient at every step.

    Returns:
        `Accelerator`: not yet tracking; call `init_trackers` once the run's configuration is known.
    """
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=list(trackers) or None,
        project_config=ProjectConfiguration(project_dir=output_dir, logging_dir=os.path.join(output_dir, "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, force=True)
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    logger.info(
        f"{accelerator.state.distributed_type} with {accelerator.num_processes} process(es)", main_process_only=True
    )
    return accelerator


def flat_config(arguments) -> dict:
    """
    Arguments as tracker hyper-parameters and model-card training arguments. TensorBoard's `add_hparams` accepts only
    int, float, str, bool and tensor values (a list or dict raises `ValueError`), so every other value becomes its
    `str`.

    Args:
        arguments: An argument dataclass instance (or any object with a `__dict__`).

    Returns:
        `dict[str, int | float | str | bool]`
    """
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(arguments).items()}
