# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The reusable parts of `examples/pretrain.py`, for it and for any other training script: argument dataclasses and
their YAML/command-line parser, the `Accelerator` and its trackers, the `--dataset` registry, the demo's stage-0 CLIP,
the student and KD teacher (and the cache of its embeddings), the paper's optimisation, the global-batch loss step, the training meter, atomic
checkpoints and training curves. Bad invocations raise `TrainingConfigurationError`. See docs/training.md.
"""

from .accelerator import available_trackers, create_accelerator, flat_config
from .arguments import (
    PRETRAINING_ARGUMENT_CLASSES,
    DataArguments,
    ModelArguments,
    PretrainingArguments,
    Stage0Arguments,
    parse_arguments,
)
from .checkpointing import TrainerState, find_latest_checkpoint, load_checkpoint, run_compatibility, save_checkpoint
from .datasets import DatasetSpec, KnowledgeMixture, load_mixture, parse_dataset_spec
from .errors import TrainingConfigurationError
from .finetuning import (
    FINETUNING_ARGUMENT_CLASSES,
    FinetuningArguments,
    FinetuningTrainingArguments,
    TaskCollator,
    TaskDataset,
    evaluate_task,
    finetuning_parameter_groups,
    load_finetuning_model,
    load_task_data,
    task_forward,
)
from .meter import TrainingMeter, format_metrics
from .models import load_pretraining_models, load_teacher
from .optim import clamp_logit_scale, cosine_schedule_with_warmup, parameter_groups
from .plotting import plot_training_curves
from .stage0 import train_stage0_clip
from .step import LOSS_NAMES, evaluate_loss, knowledge_forward
from .teacher import TeacherEmbeddingCache, teacher_embeddings

__all__ = [
    "FINETUNING_ARGUMENT_CLASSES",
    "LOSS_NAMES",
    "PRETRAINING_ARGUMENT_CLASSES",
    "DataArguments",
    "DatasetSpec",
    "FinetuningArguments",
    "FinetuningTrainingArguments",
    "KnowledgeMixture",
    "ModelArguments",
    "PretrainingArguments",
    "Stage0Arguments",
    "TaskCollator",
    "TaskDataset",
    "TeacherEmbeddingCache",
    "TrainerState",
    "TrainingConfigurationError",
    "TrainingMeter",
    "available_trackers",
    "clamp_logit_scale",
    "cosine_schedule_with_warmup",
    "create_accelerator",
    "evaluate_loss",
    "evaluate_task",
    "find_latest_checkpoint",
    "finetuning_parameter_groups",
    "flat_config",
    "format_metrics",
    "knowledge_forward",
    "load_checkpoint",
    "load_finetuning_model",
    "load_mixture",
    "load_pretraining_models",
    "load_task_data",
    "load_teacher",
    "parameter_groups",
    "parse_arguments",
    "parse_dataset_spec",
    "plot_training_curves",
    "run_compatibility",
    "save_checkpoint",
    "task_forward",
    "train_stage0_clip",
    "teacher_embeddings",
]
