# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Command-line and YAML arguments of `examples/pretrain.py`, as `HfArgumentParser` dataclasses, and `parse_arguments`,
which any training script can use with its own dataclasses.

Every field is a `--flag` of the script and a key of its YAML files (`examples/configs/*.yaml`). A YAML file is read
first (`--config FILE`, or a lone `.yaml` path as the first argument) and the command line overrides it, key by key.
"""

import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml
from transformers import HfArgumentParser

from .errors import TrainingConfigurationError

__all__ = [
    "PRETRAINING_ARGUMENT_CLASSES",
    "DataArguments",
    "ModelArguments",
    "PretrainingArguments",
    "Stage0Arguments",
    "parse_arguments",
]


@dataclass
class ModelArguments:
    """
    The model to continue and the shape of the knowledge modules added to it.

    Args:
        model_name_or_path (`str`, *optional*):
            A CLIP checkpoint (Hub id or directory) to continue as Knowledge-CLIP, or a Knowledge-CLIP checkpoint to
            keep training. When unset, a small CLIP is first trained on the demo world's captions (stage 0).
        fusion_hidden_size, fusion_num_layers, fusion_num_heads, fusion_intermediate_size (`int`, *optional*):
            The multi-modal encoder. Unset fields keep the paper's defaults (4 layers, width 1024).
        drop_path_rate (`float`, *optional*):
            Stochastic depth of the multi-modal encoder (the paper's 0.1 when unset). Unlike the sizes above, it can
            be changed when continuing a Knowledge-CLIP checkpoint.
        graph_num_layers (`int`, *optional*):
            Message-passing layers of the G2E objective.
        e2e_loss_weight, e2r_loss_weight, g2e_loss_weight (`float`, *optional*):
            Weights of the knowledge objectives in the total loss (the config's 1.0 when unset); 0 for ablations.
        kd_loss_weight (`float`, *optional*):
            Weight of the distillation against the original CLIP; 0 trains without a teacher.
        teacher_name_or_path (`str`, *optional*):
            The KD teacher: a CLIP checkpoint, or a Knowledge-CLIP checkpoint whose CLIP part is the teacher. It must
            read the student's inputs (same text vocabulary and image size). When unset, the CLIP part of
            `model_name_or_path` as loaded: the original CLIP when continuing a CLIP checkpoint, but the towers of the
            checkpoint itself when continuing a Knowledge-CLIP one.
        teacher_cache_size (`int`, *optional*):
            Teacher embeddings kept per process (`TeacherEmbeddingCache`, least recently used dropped first, 65,536
            when unset), so that an entity input seen before is not run through the KD teacher again; 0 turns the
            cache off.
        clip_loss_weight (`float`, *optional*):
            Weight of CLIP's contrastive loss on the image-text triplets (0, the paper's, when unset).
        disable_dropout (`bool`, *optional*, defaults to `False`):
            Turn off dropout everywhere (for exact comparisons between runs): the attention dropout of both CLIP towers
            (their only dropout) and the fusion encoder's attention dropout and drop-path. Wins over
            `drop_path_rate`; works on a Knowledge-CLIP checkpoint too.
    """

    model_name_or_path: str | None = field(default=None, metadata={"help": "CLIP or Knowledge-CLIP checkpoint."})
    fusion_hidden_size: int | None = field(default=None, metadata={"help": "Width of the multi-modal encoder."})
    fusion_num_layers: int | None = field(default=None, metadata={"help": "Layers of the multi-modal encoder."})
    fusion_num_heads: int | None = field(
        default=None, metadata={"help": "Attention heads of the multi-modal encoder."}
    )
    fusion_intermediate_size: int | None = field(default=None, metadata={"help": "MLP width of the fusion layers."})
    drop_path_rate: float | None = field(default=None, metadata={"help": "Drop-path rate of the fusion encoder."})
    graph_num_layers: int | None = field(default=None, metadata={"help": "Message-passing layers of G2E."})
    e2e_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the E2E loss."})
    e2r_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the E2R loss."})
    g2e_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the G2E loss."})
    kd_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the KD loss (0: no teacher)."})
    teacher_name_or_path: str | None = field(
        default=None,
        metadata={"help": "KD teacher: CLIP or Knowledge-CLIP checkpoint (default: model_name_or_path's CLIP part)."},
    )
    teacher_cache_size: int | None = field(
        default=None, metadata={"help": "Teacher embeddings cached per process (default 65536; 0: no cache)."}
    )
    clip_loss_weight: float | None = field(default=None, metadata={"help": "Weight of CLIP's own loss (ablations)."})
    disable_dropout: bool = field(
        default=False,
        metadata={"help": "Turn off dropout everywhere: towers' attention dropout, fusion dropout and drop-path."},
    )

    def __post_init__(self):
        if self.teacher_cache_size is not None and self.teacher_cache_size < 0:
            raise TrainingConfigurationError(f"--teacher_cache_size must be >= 0, got {self.teacher_cache_size}.")

    def config_overrides(self) -> dict:
        """The `KnowledgeCLIPConfig` fields other than the fusion encoder's that were set."""
        names = (
            "graph_num_layers",
            "e2e_loss_weight",
            "e2r_loss_weight",
            "g2e_loss_weight",
            "kd_loss_weight",
            "clip_loss_weight",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def fusion_size_overrides(self) -> dict:
        """The `fusion_encoder_config` sizes that were set, under their config names (they fix the weights' shapes)."""
        names = {
            "fusion_hidden_size": "hidden_size",
            "fusion_num_layers": "num_hidden_layers",
            "fusion_num_heads": "num_attention_heads",
            "fusion_intermediate_size": "intermediate_size",
        }
        return {
            config_name: getattr(self, name) for name, config_name in names.items() if getattr(self, name) is not None
        }

    def fusion_dropout_overrides(self) -> dict:
        """The `fusion_encoder_config` dropout rates that were set; `disable_dropout` zeroes all of them."""
        if self.disable_dropout:
            return {"drop_path_rate": 0.0, "attention_dropout": 0.0}
        return {"drop_path_rate": self.drop_path_rate} if self.drop_path_rate is not None else {}


@dataclass
class DataArguments:
    """
    The knowledge graphs to train on and how batches are drawn from them.

    Args:
        dataset (`list[str]`, *optional*):
            Sources as `kind:path[:weight]`, repeatable: `--dataset visual_genome:/data/vg --dataset
            conceptnet:/data/cn.csv.gz:0.3`. Kinds: `conceptnet`, `visual_genome`, `visualsem`, `image_text`, `demo`
            (a demo world directory, built when absent), `hub` (`hub:<namespace>/<name>[@revision]`, a graph uploaded
            with `KnowledgeGraph.push_to_hub`). Defaults to the demo world in `demo_dir`.
        demo_dir (`str`, *optional*, defaults to `"demo_world"`):
            Where the default demo world lives.
        demo_size (`str`, *optional*, defaults to `"default"`):
            `tiny`, `default` or `large`; the size of demo worlds built by `demo:` sources.
        demo_seed (`int`, *optional*, defaults to 0):
            Generation seed of demo worlds.
        validation_fraction (`float`, *optional*, defaults to 0.05):
            Fraction of each graph's triplets held out for the validation loss.
        num_neighbors (`int`, *optional*):
            In-edges sampled per entity and hop for G2E; the model's `graph_num_neighbors` (4) when unset.
        num_hops (`int`, *optional*):
            Hops of the G2E neighbourhood; the model's `graph_num_layers` when unset.
        dataloader_num_workers (`int`, *optional*, defaults to 0):
            Worker processes of the training data loader.
    """

    dataset: list[str] = field(
        default_factory=list,
        metadata={
            "help": "kind:path[:weight] or hub:namespace/name[@revision][:weight], repeatable.",
            "action": "extend",
        },
    )
    demo_dir: str = field(default="demo_world", metadata={"help": "Directory of the default demo world."})
    demo_size: str = field(default="default", metadata={"help": "Demo world size: tiny, default or large."})
    demo_seed: int = field(default=0, metadata={"help": "Seed of the demo world."})
    validation_fraction: float = field(default=0.05, metadata={"help": "Triplets held out for validation."})
    num_neighbors: int | None = field(default=None, metadata={"help": "In-edges sampled per entity and hop (G2E)."})
    num_hops: int | None = field(default=None, metadata={"help": "Hops of the G2E neighbourhood."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data loader worker processes."})


@dataclass
class Stage0Arguments:
    """
    The small CLIP trained from scratch on the demo world's captions when no checkpoint is given ("the original
    CLIP" that Knowledge-CLIP then continues). Cached in `stage0_dir` and reused when its arguments match.

    Args:
        stage0_dir (`str`, *optional*):
            Cache directory; `<demo_dir>/../stage0_clip` when unset.
        stage0_steps (`int`, *optional*, defaults to 300):
            Optimisation steps.
        stage0_batch_size (`int`, *optional*, defaults to 64):
            Image-caption pairs per step.
        stage0_learning_rate (`float`, *optional*, defaults to 1e-3):
            Peak learning rate (cosine schedule, 10% warm-up).
        stage0_hidden_size (`int`, *optional*, defaults to 128):
            Width of both towers.
        stage0_num_layers (`int`, *optional*, defaults to 2):
            Layers of both towers.
        stage0_image_size (`int`, *optional*, defaults to 64):
            Input resolution of the vision tower.
        stage0_patch_size (`int`, *optional*, defaults to 16):
            Patch size of the vision tower.
        stage0_max_text_length (`int`, *optional*, defaults to 32):
            Text positions (and the tokenizer's `model_max_length`).
        stage0_vocab_size (`int`, *optional*, defaults to 1024):
            Size of the BPE vocabulary trained on the world's texts.
    """

    stage0_dir: str | None = field(default=None, metadata={"help": "Cache directory of the stage-0 CLIP."})
    stage0_steps: int = field(default=300, metadata={"help": "Stage-0 optimisation steps."})
    stage0_batch_size: int = field(default=64, metadata={"help": "Stage-0 pairs per step."})
    stage0_learning_rate: float = field(default=1e-3, metadata={"help": "Stage-0 peak learning rate."})
    stage0_hidden_size: int = field(default=128, metadata={"help": "Stage-0 tower width."})
    stage0_num_layers: int = field(default=2, metadata={"help": "Stage-0 tower depth."})
    stage0_image_size: int = field(default=64, metadata={"help": "Stage-0 image resolution."})
    stage0_patch_size: int = field(default=16, metadata={"help": "Stage-0 patch size."})
    stage0_max_text_length: int = field(default=32, metadata={"help": "Stage-0 text positions."})
    stage0_vocab_size: int = field(default=1024, metadata={"help": "Stage-0 tokenizer vocabulary size."})


@dataclass
class PretrainingArguments:
    """
    Optimisation, precision, logging, evaluation and checkpointing (the paper's recipe by default).

    Args:
        output_dir (`str`, *optional*, defaults to `"knowledge-clip-demo"`):
            Where the model, processor, model card, metrics, curves, logs and checkpoints are written.
        seed (`int`, *optional*, defaults to 42):
            Seed of initialisation, data order and sampling.
        per_device_train_batch_size (`int`, *optional*, defaults to 32):
            Triplets per process and micro-step. The global batch is this times processes times accumulation steps.
        per_device_eval_batch_size (`int`, *optional*, defaults to 64):
            Triplets per process for the validation loss.
        gradient_accumulation_steps (`int`, *optional*, defaults to 1):
            Micro-steps per optimiser step. Contrastive negatives come from one micro-batch only.
        learning_rate (`float`, *optional*, defaults to 1e-5):
            Peak learning rate of the CLIP towers.
        new_modules_learning_rate (`float`, *optional*, defaults to 1e-3):
            Peak learning rate of the modules Knowledge-CLIP adds (fusion encoder, relation and graph heads).
        weight_decay (`float`, *optional*, defaults to 0.05):
            AdamW weight decay of the weight matrices (the patch-embedding convolution included); never applied to
            biases, norms and other vectors, `nn.Embedding` tables or `logit_scale`.
        adam_beta1, adam_beta2, adam_epsilon (`float`, *optional*):
            AdamW moments.
        warmup_steps (`int`, *optional*):
            Linear warm-up steps; `warmup_ratio` of the run when unset.
        warmup_ratio (`float`, *optional*, defaults to 0.05):
            Warm-up length as a fraction of the optimiser steps.
        max_grad_norm (`float`, *optional*, defaults to 1.0):
            Gradient clipping norm (0 disables clipping).
        max_steps (`int`, *optional*):
            Optimiser steps; overrides `num_train_epochs`.
        num_train_epochs (`float`, *optional*, defaults to 1.0):
            Passes over the triplet mixture.
        mixed_precision (`str`, *optional*):
            `no`, `bf16` or `fp16`; what `accelerate launch`/`accelerate config` says when unset.
        activation_checkpointing (`bool`, *optional*, defaults to `False`):
            Recompute the towers' and fusion layers' activations in the backward pass (less memory, more time).
        logging_steps (`int`, *optional*, defaults to 10):
            Optimiser steps between log lines and tracker points.
        eval_steps (`int`, *optional*):
            Optimiser steps between evaluations; only at the end when unset.
        max_eval_batches (`int`, *optional*):
            Cap on the validation batches per evaluation.
        benchmark_demo_world (`bool`, *optional*, defaults to `True`):
            After training, run `knowledge_clip.evaluation.evaluate_on_demo_world` (zero-shot classification,
            retrieval, link and relation prediction, caption probes) on every `demo` source, for the KD teacher (the
            original CLIP) and the trained model; results go to `metrics.json`.
        checkpointing_steps (`int`, *optional*):
            Optimiser steps between resumable checkpoints.
        checkpoints_total_limit (`int`, *optional*, defaults to 2):
            Complete checkpoints kept; older ones are deleted once a newer one is complete.
        resume_from_checkpoint (`str`, *optional*):
            `latest` (the newest complete checkpoint in `output_dir`, or a fresh start if there is none) or a path.
        report_to (`list[str]`, *optional*, defaults to `["tensorboard"]`):
            Trackers: `tensorboard`, `trackio` (when installed), or `none`.
        push_to_hub (`bool`, *optional*, defaults to `False`):
            Upload the output directory at the end.
        hub_model_id (`str`, *optional*):
            Repository to push to (`namespace/name`); required with `push_to_hub`.
        license (`str`, *optional*):
            License of the model card; inherited from a known base model (`knowledge_clip.hub.resolve_license`).
    """

    output_dir: str = field(default="knowledge-clip-demo", metadata={"help": "Output directory."})
    seed: int = field(default=42, metadata={"help": "Random seed."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Triplets per process and micro-step."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Triplets per process for evaluation."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimiser step."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the CLIP towers."})
    new_modules_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the new modules."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.98, metadata={"help": "AdamW beta2."})
    adam_epsilon: float = field(default=1e-6, metadata={"help": "AdamW epsilon."})
    warmup_steps: int | None = field(default=None, metadata={"help": "Linear warm-up steps."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warm-up as a fraction of the steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0: off)."})
    max_steps: int | None = field(default=None, metadata={"help": "Optimiser steps (overrides epochs)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Training epochs."})
    mixed_precision: str | None = field(default=None, metadata={"help": "no, bf16 or fp16."})
    activation_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations in backward."})
    logging_steps: int = field(default=10, metadata={"help": "Steps between log lines."})
    eval_steps: int | None = field(default=None, metadata={"help": "Steps between evaluations."})
    max_eval_batches: int | None = field(default=None, metadata={"help": "Cap on validation batches."})
    benchmark_demo_world: bool = field(default=True, metadata={"help": "Benchmark demo worlds at the end."})
    checkpointing_steps: int | None = field(default=None, metadata={"help": "Steps between checkpoints."})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "Complete checkpoints kept."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "'latest' or a checkpoint path."})
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"], metadata={"help": "Trackers."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the result to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository id."})
    license: str | None = field(default=None, metadata={"help": "License of the model card."})

    def __post_init__(self):
        if self.mixed_precision not in (None, "no", "bf16", "fp16"):
            raise TrainingConfigurationError(
                f"--mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}."
            )
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise TrainingConfigurationError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainingConfigurationError(f"--max_steps must be >= 1, got {self.max_steps}.")


PRETRAINING_ARGUMENT_CLASSES = (ModelArguments, DataArguments, Stage0Arguments, PretrainingArguments)
"""The dataclasses of `examples/pretrain.py`, in the order `parse_arguments` returns them by default."""


def parse_arguments(
    argv: Sequence[str] | None = None,
    demo_defaults: dict | None = None,
    dataclass_types: Sequence[type] = PRETRAINING_ARGUMENT_CLASSES,
) -> tuple:
    """
    Parses `argv` (default `sys.argv[1:]`) into argument dataclasses, YAML first, command line on top.

    Args:
        argv (`list[str]`, *optional*):
            The arguments. `--config FILE.yaml` (or a lone `.yaml` path first) names a YAML file whose keys are field
            names; any flag on the command line wins over the same key in the file. Flags of list fields that
            accumulate (`"action": "extend"` in their metadata, like `--dataset`) replace the file's list as a whole.
        demo_defaults (`dict`, *optional*):
            Defaults of the demo, used under the file and the flags when neither names a `model_name_or_path`.
        dataclass_types (`Sequence[type]`, *optional*, defaults to `PRETRAINING_ARGUMENT_CLASSES`):
            The dataclasses to fill, e.g. a fine-tuning script's own; field names must be unique across them.

    Returns:
        `tuple`: one instance of each of `dataclass_types`, in their order (by default `(ModelArguments,
        DataArguments, Stage0Arguments, PretrainingArguments)`).

    Raises:
        TrainingConfigurationError: with a one-line message for a missing or malformed YAML file, an unknown key, or
            a value a dataclass's `__post_init__` rejects.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = None
    if argv and argv[0].endswith((".yaml", ".yml")):
        config_path = argv.pop(0)
    elif "--config" in argv:
        position = argv.index("--config")
        if position + 1 == len(argv):
            raise TrainingConfigurationError("--config needs a YAML file.")
        config_path = argv[position + 1]
        del argv[position : position + 2]

    parser = HfArgumentParser(dataclass_types)
    config_values = _read_yaml(config_path) if config_path is not None else {}
    fields = [f for cls in dataclass_types for f in dataclasses.fields(cls)]
    unknown = sorted(set(config_values) - {f.name for f in fields})
    if unknown:
        raise TrainingConfigurationError(f"{config_path}: unknown keys {unknown}.")
    # A list that accumulates over repeated flags (argparse "extend") gets its YAML value after parsing instead of as
    # a parser default, which the flags would extend rather than replace.
    extended = {f.name for f in fields if f.metadata.get("action") == "extend"}
    config_lists = {name: config_values.pop(name) for name in extended if name in config_values}
    names_a_model = "model_name_or_path" in config_values or any(
        arg.split("=")[0] in ("--model_name_or_path", "--model-name-or-path") for arg in argv
    )
    if demo_defaults and not names_a_model:
        parser.set_defaults(**demo_defaults)
    parser.set_defaults(**config_values)
    parsed = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    for arguments in parsed:
        for name, value in config_lists.items():
            if hasattr(arguments, name) and not getattr(arguments, name):
                setattr(arguments, name, [value] if isinstance(value, str) else list(value))
    return tuple(parsed)


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise TrainingConfigurationError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as file:
            values = yaml.safe_load(file) or {}
    except yaml.YAMLError as error:
        raise TrainingConfigurationError(f"{path}: not valid YAML ({str(error).splitlines()[0]}).") from None
    if not isinstance(values, dict):
        raise TrainingConfigurationError(
            f"{path}: expected a mapping of argument names to values, got {type(values).__name__}."
        )
    return values
