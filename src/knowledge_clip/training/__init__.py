# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The reusable parts of `examples/pretrain.py`: argument dataclasses, the `--dataset` registry, the demo's stage-0 CLIP,
the paper's optimisation, the global-batch loss step, atomic checkpoints and training curves. See docs/training.md.
"""

from .arguments import DataArguments, ModelArguments, PretrainingArguments, Stage0Arguments, parse_arguments
from .checkpointing import TrainerState, find_latest_checkpoint, load_checkpoint, save_checkpoint
from .datasets import DatasetSpec, KnowledgeMixture, load_mixture, parse_dataset_spec
from .optim import clamp_logit_scale, cosine_schedule_with_warmup, parameter_groups
from .plotting import plot_training_curves
from .stage0 import train_stage0_clip
from .step import evaluate_loss, knowledge_forward

__all__ = [
    "DataArguments",
    "DatasetSpec",
    "KnowledgeMixture",
    "ModelArguments",
    "PretrainingArguments",
    "Stage0Arguments",
    "TrainerState",
    "clamp_logit_scale",
    "cosine_schedule_with_warmup",
    "evaluate_loss",
    "find_latest_checkpoint",
    "knowledge_forward",
    "load_checkpoint",
    "load_mixture",
    "parameter_groups",
    "parse_arguments",
    "parse_dataset_spec",
    "plot_training_curves",
    "save_checkpoint",
    "train_stage0_clip",
]
