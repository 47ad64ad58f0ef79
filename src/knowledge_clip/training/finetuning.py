# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The task glue of `examples/finetune.py`: fine-tuning a Knowledge-CLIP (or plain CLIP) checkpoint on VQAv2, SNLI-VE,
NLVR2 or Karpathy-split image-text retrieval.

- arguments: `FinetuningArguments` (task and data) and `FinetuningTrainingArguments` (the pre-training optimisation
  arguments with fine-tuning defaults), `FINETUNING_ARGUMENT_CLASSES` for `parse_arguments`;
- data: `load_task_data` reads the published files through `knowledge_clip.data.downstream` and turns them into
  `TaskRecord`s; `TaskDataset` opens their images with the package's safe loader and draws its own order per epoch;
  `TaskCollator` tokenises and processes a batch; `count_truncated_texts` counts the texts the tokenizer cuts;
- models: `load_finetuning_model` (a Knowledge-CLIP, task or CLIP checkpoint, with the label check) and
  `finetuning_parameter_groups` (what loading initialised at the new modules' rate, everything pre-trained at the
  towers');
- steps and metrics: `task_forward` (the task loss; CLIP's contrastive loss over the global batch for retrieval),
  `evaluate_task` (VQA accuracy, classification accuracy or retrieval Recall@k, predictions gathered over
  processes), `FinetuningHistory` (best metric and histories, checkpointed with the run);
- outputs: `save_model_atomically`, `finetuned_model_card`, `push_task_model`.

Every bad invocation raises `TrainingConfigurationError` with a one-line message. See docs/downstream.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from huggingface_hub import HfApi, ModelCard, ModelCardData
from transformers import CLIPConfig, CLIPProcessor
from transformers.utils import logging as transformers_logging

from .. import hub
from ..configuration_knowledge_clip import JOINT_RELATIONS, TASK_HEAD_INPUTS, KnowledgeCLIPConfig
from ..data.image_text import IMAGE_OF
from ..data.images import open_image
from ..evaluation.metrics import load_metric
from ..evaluation.retrieval import reranked_retrieval_ranks, retrieval_ranks
from ..losses import FeatureGather, clip_loss
from ..modeling_knowledge_clip import (
    KnowledgeCLIPForImageTextClassification,
    KnowledgeCLIPForQuestionAnswering,
    KnowledgeCLIPModel,
)
from ..processing_knowledge_clip import KnowledgeCLIPProcessor
from .arguments import ModelArguments, PretrainingArguments
from .errors import TrainingConfigurationError
from .models import read_config
from .optim import decay_groups

__all__ = [
    "FINETUNING_ARGUMENT_CLASSES",
    "FINETUNING_TASKS",
    "NLVR2_LABELS",
    "TASK_METRICS",
    "FinetuningArguments",
    "FinetuningHistory",
    "FinetuningTrainingArguments",
    "RetrievalReranking",
    "TaskCollator",
    "TaskData",
    "TaskDataset",
    "TaskRecord",
    "check_checkpoint_labels",
    "check_model_arguments",
    "count_truncated_texts",
    "evaluate_task",
    "finetuned_model_card",
    "finetuning_parameter_groups",
    "label_fingerprint",
    "load_finetuning_model",
    "load_task_data",
    "push_finetuned_model",
    "resolve_finetuning_license",
    "retrieval_card_results",
    "save_model_atomically",
    "task_forward",
    "write_json",
]

logger = get_logger(__name__)

FINETUNING_TASKS = ("vqa", "snli_ve", "nlvr2", "retrieval")
"""The tasks of `--task`."""

NLVR2_LABELS = ("False", "True")
"""NLVR2's classes in label order (the published `label` strings): False = 0, True = 1."""

RECALL_AT = (1, 5, 10)
RETRIEVAL_DIRECTIONS = ("image_to_text", "text_to_image")

TASK_METRICS = {
    "vqa": ("vqa_accuracy",),
    "snli_ve": ("accuracy",),
    "nlvr2": ("accuracy",),
    "retrieval": (
        "mean_recall",
        *(f"{direction}_recall@{k}" for direction in RETRIEVAL_DIRECTIONS for k in RECALL_AT),
    ),
}
"""The metrics each task's evaluation reports, the default `--metric_for_best_model` first (all: higher is better)."""

# Hub pipeline tags (huggingface.js `PIPELINE_DATA`). The Hub has no image-text classification task, so the
# visual-entailment and NLVR2 cards carry none (the Hub then infers one from the config) and say what they do in
# their tags instead.
PIPELINE_TAGS = {"vqa": "visual-question-answering", "snli_ve": None, "nlvr2": None}
TASK_TAGS = {"vqa": ("visual-question-answering", "vqa"), "snli_ve": ("visual-entailment",), "nlvr2": ("nlvr2",)}
# Card results under Hub task types (`hub.eval_results_from_dict` keys).
CARD_TASK_NAMES = {"vqa": "Visual Question Answering", "snli_ve": "Visual Entailment", "nlvr2": "Visual Reasoning"}
RETRIEVAL_TAGS = ("image-text-retrieval", "fine-tuned")
DEFAULT_DATASET_NAMES = {"vqa": "VQAv2", "snli_ve": "SNLI-VE", "nlvr2": "NLVR2"}

TASK_MODEL_CLASSES = {
    "vqa": KnowledgeCLIPForQuestionAnswering,
    "snli_ve": KnowledgeCLIPForImageTextClassification,
    "nlvr2": KnowledgeCLIPForImageTextClassification,
}
TASK_NUM_IMAGES = {"vqa": 1, "snli_ve": 1, "nlvr2": 2, "retrieval": 1}
TASK_ARCHITECTURES = {cls.__name__ for cls in TASK_MODEL_CLASSES.values()}


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------
# The task models' config fields a fine-tuning run may set, with their choices.
TASK_MODEL_SETTINGS = {"joint_relation": JOINT_RELATIONS, "task_head_inputs": TASK_HEAD_INPUTS}


@dataclass
class FinetuningArguments:
    """
    The downstream task and its files.

    Args:
        task (`str`):
            `vqa` (VQAv2), `snli_ve` (SNLI-VE), `nlvr2` (NLVR2) or `retrieval` (Karpathy-split COCO / Flickr30K).
        train_file (`str`):
            VQA: the questions JSON (`v2_OpenEnded_mscoco_train2014_questions.json`); SNLI-VE: the JSON Lines file
            (`snli_ve_train.jsonl`); NLVR2: the JSON Lines file (`train.json`); retrieval: the Karpathy JSON
            (`dataset_coco.json`, `dataset_flickr30k.json`).
        validation_file (`str`, *optional*):
            The same for evaluation; without it there is no evaluation and no best checkpoint. Retrieval may name the
            same Karpathy file as `train_file` (its `validation_split` is read).
        annotations_file, validation_annotations_file (`str`, *optional*):
            VQA only: the annotations JSON of `train_file` (required) and of `validation_file` (required to
            evaluate).
        image_dir (`str`):
            Where `train_file`'s images are (COCO `train2014/`, `flickr30k-images/`, NLVR2 `images/train/`, the
            Karpathy image root).
        validation_image_dir (`str`, *optional*):
            Where `validation_file`'s images are; `image_dir` when unset.
        test_file, test_annotations_file, test_image_dir (`str`, *optional*):
            A held-out split scored once, after training, by the best model on `validation_file` (the final model
            without one): the metrics go to `output_dir/test_results.json`. Nothing is chosen on it. VQA needs its
            annotations; the images default to `image_dir`; retrieval may name the Karpathy file again (its
            `test_split` is read).
        test_subsets_file (`str`, *optional*):
            VQA and classification: a JSON object `{subset name: [example ids]}` (VQA `question_id`, SNLI-VE `pairID`,
            NLVR2 `identifier`); each subset's metrics are reported beside the whole split's (`<name>/<metric>`),
            e.g. the demo world's knowledge split.
        train_split, validation_split, test_split (`str`, *optional*):
            Retrieval only: the Karpathy splits to train, evaluate and test on (`train`, `val` and `test`: Flickr30K's
            1K and COCO's 5K test images).
        include_restval (`bool`, *optional*, defaults to `True`):
            Retrieval only: `--train_split train` also reads COCO's `restval` images (the 113K-image training set of
            the usual recipes); `--no_include_restval` keeps the 83K `train` images only.
        joint_relation (`str`, *optional*):
            VQA and classification: what the relation slot of the joint image-text sequence holds, `masked` (Eq. 6)
            or `task_token` (a learned vector, starting at zero); the checkpoint's (`masked` for a CLIP or
            Knowledge-CLIP checkpoint) when unset. See docs/downstream.md for the measured comparison.
        task_head_inputs (`str`, *optional*):
            VQA and classification: what the classifier reads, `joint` (the joint representation) or
            `joint_and_towers` (and the towers' image and text embeddings with their product); the checkpoint's
            (`joint` for a CLIP or Knowledge-CLIP checkpoint) when unset.
        rerank_top_k (`int`, *optional*, defaults to 0):
            Retrieval: also report every Recall@k after re-ranking each query's `rerank_top_k` candidates by the
            towers' score plus the fusion encoder's E2E score (`reranked_*` metrics; `RetrievalReranking`). 0: off.
            The best model is still chosen on the towers' metrics.
        answer_vocab_size (`int`, *optional*, defaults to 3129):
            VQA: the answer classes, the most frequent answers of the training annotations (3129 is the usual VQAv2
            vocabulary).
        metric_for_best_model (`str`, *optional*):
            The evaluation metric that picks `output_dir/best`: `vqa_accuracy`; `accuracy` (SNLI-VE, NLVR2);
            `mean_recall` or `{image_to_text,text_to_image}_recall@{1,5,10}` (retrieval). The first is the default.
        check_images (`bool`, *optional*, defaults to `True`):
            Drop (and report) examples whose image file is missing when the data is loaded, instead of failing at the
            first batch that reads it.
        max_train_samples, max_eval_samples (`int`, *optional*):
            Keep only the first examples of the training split, and of the validation and test splits (quick runs,
            debugging); retrieval: the first images, with all their captions.
        dataset_name (`str`, *optional*):
            The dataset's name on the model card (`VQAv2`, `SNLI-VE`, `NLVR2`; retrieval: from the Karpathy file).
        dataloader_num_workers (`int`, *optional*, defaults to 0):
            Worker processes of the data loaders (images are decoded there).
    """

    task: str | None = field(default=None, metadata={"help": f"One of {', '.join(FINETUNING_TASKS)}."})
    train_file: str | None = field(default=None, metadata={"help": "Training file in the task's published format."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file (evaluation, best model)."})
    annotations_file: str | None = field(default=None, metadata={"help": "VQA: annotations of train_file."})
    validation_annotations_file: str | None = field(
        default=None, metadata={"help": "VQA: annotations of validation_file."}
    )
    image_dir: str | None = field(default=None, metadata={"help": "Directory of train_file's images."})
    validation_image_dir: str | None = field(
        default=None, metadata={"help": "Directory of validation_file's images (default: image_dir)."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Test file, scored once by the best model."})
    test_annotations_file: str | None = field(default=None, metadata={"help": "VQA: annotations of test_file."})
    test_image_dir: str | None = field(
        default=None, metadata={"help": "Directory of test_file's images (default: image_dir)."}
    )
    test_subsets_file: str | None = field(
        default=None, metadata={"help": "JSON {subset: [example ids]}: test metrics per subset too."}
    )
    train_split: str = field(default="train", metadata={"help": "Retrieval: Karpathy split to train on."})
    validation_split: str = field(default="val", metadata={"help": "Retrieval: Karpathy split to evaluate on."})
    test_split: str = field(default="test", metadata={"help": "Retrieval: Karpathy split of test_file."})
    include_restval: bool = field(
        default=True, metadata={"help": "Retrieval: --train_split train also reads COCO's restval images."}
    )
    joint_relation: str | None = field(
        default=None,
        metadata={
            "help": f"Relation slot of the joint sequence: {' or '.join(JOINT_RELATIONS)} (default: checkpoint's)."
        },
    )
    task_head_inputs: str | None = field(
        default=None,
        metadata={"help": f"What the classifier reads: {' or '.join(TASK_HEAD_INPUTS)} (default: checkpoint's)."},
    )
    answer_vocab_size: int = field(default=3129, metadata={"help": "VQA: answer classes (most frequent answers)."})
    rerank_top_k: int = field(
        default=0, metadata={"help": "Retrieval: also score re-ranking of each query's top-k by the fusion encoder."}
    )
    metric_for_best_model: str | None = field(default=None, metadata={"help": "Metric that selects output_dir/best."})
    check_images: bool = field(default=True, metadata={"help": "Drop examples whose image is missing at load time."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N validation and test examples."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Dataset name on the model card."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data loader worker processes."})

    def __post_init__(self):
        if self.task not in FINETUNING_TASKS:
            raise TrainingConfigurationError(
                f"--task must be one of {', '.join(FINETUNING_TASKS)}, got {self.task!r}."
            )
        if self.metric_for_best_model is None:
            self.metric_for_best_model = TASK_METRICS[self.task][0]
        elif self.metric_for_best_model not in TASK_METRICS[self.task]:
            raise TrainingConfigurationError(
                f"--metric_for_best_model {self.metric_for_best_model!r}: --task {self.task} reports "
                f"{', '.join(TASK_METRICS[self.task])}."
            )
        for name, value in self.task_model_settings().items():
            if self.task == "retrieval":
                raise TrainingConfigurationError(f"--{name} is for the joint-encoder tasks, not retrieval.")
            if value not in TASK_MODEL_SETTINGS[name]:
                raise TrainingConfigurationError(
                    f"--{name} must be one of {', '.join(TASK_MODEL_SETTINGS[name])}, got {value!r}."
                )
        if self.rerank_top_k < 0:
            raise TrainingConfigurationError(f"--rerank_top_k must be >= 0, got {self.rerank_top_k}.")
        if self.rerank_top_k and self.task != "retrieval":
            raise TrainingConfigurationError("--rerank_top_k is for --task retrieval only.")
        if self.answer_vocab_size < 1:
            raise TrainingConfigurationError(f"--answer_vocab_size must be >= 1, got {self.answer_vocab_size}.")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise TrainingConfigurationError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.task != "vqa":
            for name in ("annotations_file", "validation_annotations_file", "test_annotations_file"):
                if getattr(self, name) is not None:
                    raise TrainingConfigurationError(f"--{name} is for --task vqa only.")
        if self.test_subsets_file is not None and (self.task == "retrieval" or self.test_file is None):
            raise TrainingConfigurationError("--test_subsets_file needs --test_file and a task other than retrieval.")

    def task_model_settings(self) -> dict[str, str]:
        """The task model's config fields that were set (`joint_relation`, `task_head_inputs`)."""
        return {name: getattr(self, name) for name in TASK_MODEL_SETTINGS if getattr(self, name) is not None}

    def check_files(self) -> None:
        """
        Fails fast, before any model is loaded, on a missing flag, file or directory.

        Raises:
            TrainingConfigurationError: naming the flag and the path.
        """
        required = {"train_file": self.train_file, "image_dir": self.image_dir}
        if self.task == "vqa":
            required["annotations_file"] = self.annotations_file
            if self.validation_file is not None:
                required["validation_annotations_file"] = self.validation_annotations_file
            if self.test_file is not None:
                required["test_annotations_file"] = self.test_annotations_file
        for name, value in required.items():
            if value is None:
                hint = (
                    " (VQA needs the annotations of every split it trains or evaluates on)" if "annot" in name else ""
                )
                raise TrainingConfigurationError(f"--task {self.task} needs --{name}{hint}.")
        files = ("train_file", "validation_file", "test_file", "test_subsets_file")
        for name in files + ("annotations_file", "validation_annotations_file", "test_annotations_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise TrainingConfigurationError(f"--{name} {path}: no such file.")
        for name in ("image_dir", "validation_image_dir", "test_image_dir"):
            path = getattr(self, name)
            if path is not None and not os.path.isdir(path):
                raise TrainingConfigurationError(f"--{name} {path}: no such directory.")


@dataclass
class FinetuningTrainingArguments(PretrainingArguments):
    """
    The optimisation, precision, logging, evaluation and checkpointing arguments of pre-training
    ([`PretrainingArguments`], same flags and meaning), with fine-tuning defaults: `output_dir`
    `knowledge-clip-finetuned`, `new_modules_learning_rate` 1e-4, `warmup_ratio` 0.1. The two learning rates split
    the model by what the checkpoint holds (`finetuning_parameter_groups`): `learning_rate` for what it trained (the
    towers, and a Knowledge-CLIP checkpoint's fusion encoder), `new_modules_learning_rate` for what loading
    initialises (the task head, a task token, and the fusion encoder of a plain CLIP checkpoint).
    `eval_steps` evaluates on `--validation_file` with the task's metric and keeps the best model; `max_eval_batches`
    caps the VQA and classification evaluations (never retrieval's, whose gallery must be whole).
    `benchmark_demo_world` is a pre-training option and must stay off.
    """

    output_dir: str = field(default="knowledge-clip-finetuned", metadata={"help": "Output directory."})
    learning_rate: float = field(
        default=1e-5,
        metadata={"help": "Learning rate of the weights the checkpoint trained (towers, fusion encoder)."},
    )
    new_modules_learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Learning rate of the weights loading initialises (task head; a CLIP's fusion encoder)."},
    )
    warmup_ratio: float = field(default=0.1, metadata={"help": "Warm-up as a fraction of the steps."})
    benchmark_demo_world: bool = field(default=False, metadata={"help": "Pre-training only; must stay off."})

    def __post_init__(self):
        super().__post_init__()
        if self.benchmark_demo_world:
            raise TrainingConfigurationError("--benchmark_demo_world is a pre-training option (examples/pretrain.py).")


FINETUNING_ARGUMENT_CLASSES = (ModelArguments, FinetuningArguments, FinetuningTrainingArguments)
"""The dataclasses of `examples/finetune.py`, in the order `parse_arguments` returns them."""


def check_model_arguments(model_args: ModelArguments) -> None:
    """
    The `ModelArguments` that fine-tuning uses are the checkpoint, the fusion sizes (a CLIP checkpoint only) and the
    dropout switches; the pre-training objectives' weights and teacher are refused rather than ignored.

    Raises:
        TrainingConfigurationError: for a missing checkpoint or a pre-training-only flag.
    """
    if model_args.model_name_or_path is None:
        raise TrainingConfigurationError("--model_name_or_path is required: a Knowledge-CLIP or CLIP checkpoint.")
    pretraining_only = sorted(model_args.config_overrides())
    pretraining_only += [
        name for name in ("teacher_name_or_path", "teacher_cache_size") if getattr(model_args, name) is not None
    ]
    if pretraining_only:
        raise TrainingConfigurationError(
            f"--{', --'.join(pretraining_only)}: pre-training options (examples/pretrain.py), not fine-tuning ones."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRecord:
    """
    One training or evaluation item of any task.

    Args:
        text (`str` or `None`): The question, hypothesis, statement or caption; `None` for a gallery image.
        images (`tuple[str, ...]`): Absolute image paths, in order (NLVR2: left, right); empty for a gallery caption.
        label (`int` or `None`): The class (SNLI-VE, NLVR2), or `None`.
        answer_labels, answer_scores (`tuple`): VQA: the answer classes of the question and their soft scores.
        image_id, text_id (`int`): Retrieval: the gallery image and caption indices (contrastive false-negative ids).
    """

    text: str | None
    images: tuple[str, ...]
    label: int | None = None
    answer_labels: tuple[int, ...] = ()
    answer_scores: tuple[float, ...] = ()
    image_id: int = -1
    text_id: int = -1


@dataclass
class TaskData:
    """
    One split of a task, ready for `TaskDataset`.

    Args:
        records (`list[TaskRecord]`): Training items (VQA, SNLI-VE, NLVR2: examples; retrieval: captions).
        image_dir (`str`): The directory every image path lies in (the safe loader's root).
        labels (`list[str]`): The class names in label order (VQA: the answer vocabulary); empty for retrieval.
        references (`list`): Per record, what its prediction is scored against (VQA: the 10 human answers;
            classification: the label).
        answer_types (`list[str]`): VQA: each question's answer type.
        example_ids (`list`): Per record, the dataset's id of the example (VQA: `question_id`; SNLI-VE: `pairID`, or
            `None` where the file has none; NLVR2: `identifier`), to score named subsets (`evaluate_task(subsets=...)`).
        gallery (`list[str]`): Retrieval: the gallery image paths (`TaskRecord.image_id` indexes them).
        text_to_image (`list[int]`): Retrieval: the gallery image of each caption.
        report (`str`): The loader's report (skipped records), for the log.
        num_outside_vocabulary (`int`): VQA: human answers outside the answer vocabulary.
    """

    records: list[TaskRecord]
    image_dir: str
    labels: list[str] = field(default_factory=list)
    references: list = field(default_factory=list)
    answer_types: list[str] = field(default_factory=list)
    example_ids: list = field(default_factory=list)
    gallery: list[str] = field(default_factory=list)
    text_to_image: list[int] = field(default_factory=list)
    report: str = ""
    num_outside_vocabulary: int = 0

    @property
    def texts(self) -> list[str]:
        return [record.text for record in self.records if record.text is not None]

    def gallery_records(self) -> tuple[list[TaskRecord], list[TaskRecord]]:
        """Retrieval evaluation: one record per gallery image (no text) and one per caption (no image)."""
        images = [TaskRecord(text=None, images=(path,), image_id=i) for i, path in enumerate(self.gallery)]
        texts = [
            TaskRecord(text=record.text, images=(), image_id=record.image_id, text_id=record.text_id)
            for record in self.records
        ]
        return images, texts


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _report_text(report) -> str:
    if report is None:
        return ""
    for method in ("summary", "format"):
        if callable(getattr(report, method, None)):
            return str(getattr(report, method)())
    return str(report)


def _loader_error(flag: str, path: str, error: BaseException) -> TrainingConfigurationError:
    return TrainingConfigurationError(f"--{flag} {path}: {_one_line(error)}")


def load_task_data(task_args: FinetuningArguments, split: str, labels: Sequence[str] | None = None) -> TaskData:
    """
    Reads one split of the task's published files (`knowledge_clip.data.downstream`) into `TaskData`.

    Args:
        task_args (`FinetuningArguments`): The task, files and options.
        split (`str`): `"train"`, `"validation"` or `"test"`.
        labels (`Sequence[str]`, *optional*): VQA validation and test: the answer vocabulary built on the training
            split (their questions are scored against it).

    Returns:
        `TaskData`.

    Raises:
        TrainingConfigurationError: a file the loader rejects, or a split left without examples.
    """
    from ..data import downstream  # the loaders are only needed by a fine-tuning run

    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
    train = split == "train"
    prefix = "" if train else f"{split}_"
    flag = f"{split}_file"
    path = getattr(task_args, flag)
    image_dir = getattr(task_args, f"{prefix}image_dir") or task_args.image_dir
    limit = task_args.max_train_samples if train else task_args.max_eval_samples
    check = task_args.check_images
    task = task_args.task
    try:
        if task == "vqa":
            annotations = getattr(task_args, f"{prefix}annotations_file")
            examples, report = downstream.load_vqa(path, annotations, image_dir, check_images=check)
        elif task == "snli_ve":
            examples, report = downstream.load_snli_ve(path, image_dir, check_images=check)
        elif task == "nlvr2":
            examples, report = downstream.load_nlvr2(path, image_dir, check_images=check)
        else:
            examples, report = downstream.load_karpathy_retrieval(
                path,
                image_dir,
                split=getattr(task_args, f"{split}_split"),
                check_images=check,
                include_restval=task_args.include_restval,
            )
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise _loader_error(flag, path, error) from None

    if task == "retrieval":
        data = _retrieval_data(examples, image_dir, limit)
    else:
        examples = list(examples)[:limit] if limit else list(examples)
        if task == "vqa":
            if not train:  # a question without human answers cannot be scored
                examples = [example for example in examples if example.answers]
            if labels is None:
                labels = downstream.build_answer_vocabulary(examples, size=task_args.answer_vocab_size)
            data = _vqa_data(examples, image_dir, list(labels), downstream.vqa_soft_scores)
        elif task == "snli_ve":
            data = _classification_data(examples, image_dir, list(downstream.SNLI_VE_LABELS), nlvr2=False)
        else:
            data = _classification_data(examples, image_dir, list(NLVR2_LABELS), nlvr2=True)
    data.report = _report_text(report)
    if not data.records:
        raise TrainingConfigurationError(f"--{flag} {path}: no usable examples ({data.report or 'empty'}).")
    return data


def load_test_subsets(path: str) -> dict[str, set]:
    """
    Reads `--test_subsets_file`: a JSON object `{subset name: [example ids]}`.

    Raises:
        TrainingConfigurationError: unreadable JSON, or a value that is not a list of ids, naming the file and key.
    """
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError) as error:
        raise _loader_error("test_subsets_file", path, error) from None
    if not isinstance(value, dict):
        raise TrainingConfigurationError(f"--test_subsets_file {path}: expected a JSON object {{subset: [ids]}}.")
    subsets = {}
    for name, ids in value.items():
        if not isinstance(ids, list) or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in ids):
            raise TrainingConfigurationError(
                f"--test_subsets_file {path}: key {name!r} must hold a list of example ids (integers or strings)."
            )
        subsets[name] = set(ids)
    return subsets


def _vqa_data(examples, image_dir: str, vocabulary: list[str], soft_scores) -> TaskData:
    index = {answer: position for position, answer in enumerate(vocabulary)}
    records, references, answer_types, example_ids, outside = [], [], [], [], 0
    for example in examples:
        answer_labels, scores, num_outside = soft_scores(example.answers, index) if example.answers else ([], [], 0)
        outside += int(num_outside)
        records.append(
            TaskRecord(
                text=example.question,
                images=(str(example.image),),
                answer_labels=tuple(int(label) for label in answer_labels),
                answer_scores=tuple(float(score) for score in scores),
            )
        )
        references.append(list(example.answers or []))
        answer_types.append(str(example.answer_type))
        example_ids.append(example.question_id)
    return TaskData(
        records,
        image_dir,
        labels=vocabulary,
        references=references,
        answer_types=answer_types,
        example_ids=example_ids,
        num_outside_vocabulary=outside,
    )


def _classification_data(examples, image_dir: str, labels: list[str], nlvr2: bool) -> TaskData:
    records = []
    for example in examples:
        if nlvr2:
            records.append(
                TaskRecord(
                    text=example.sentence,
                    images=(str(example.left_image), str(example.right_image)),
                    label=int(example.label),
                )
            )
        else:
            records.append(TaskRecord(text=example.text, images=(str(example.image),), label=int(example.label)))
    example_ids = [example.identifier if nlvr2 else example.pair_id for example in examples]
    references = [record.label for record in records]
    return TaskData(records, image_dir, labels=labels, references=references, example_ids=example_ids)


def _retrieval_data(split, image_dir: str, limit: int | None) -> TaskData:
    gallery = [str(path) for path in split.images]
    caption_image = [int(i) for i in split.caption_image]
    captions = list(split.captions)
    if limit:  # the first `limit` images with all their captions
        gallery = gallery[:limit]
        kept = [i for i, image in enumerate(caption_image) if image < limit]
        captions, caption_image = [captions[i] for i in kept], [caption_image[i] for i in kept]
    records = [
        TaskRecord(text=caption, images=(gallery[image],), image_id=image, text_id=position)
        for position, (caption, image) in enumerate(zip(captions, caption_image))
    ]
    return TaskData(records, image_dir, gallery=gallery, text_to_image=caption_image)


def count_truncated_texts(tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 1024) -> int:
    """
    How many of `texts` are longer than `max_length` tokens (special tokens included), i.e. cut by
    `truncation=True`.

    Args:
        tokenizer: The processor's tokenizer.
        texts (`Sequence[str]`): The texts.
        max_length (`int`): The text tower's positions (`text_config.max_position_embeddings`).
        batch_size (`int`, *optional*, defaults to 1024): Texts per tokenizer call.
    """
    truncated = 0
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(list(texts[start : start + batch_size]), truncation=False, padding=False, verbose=False)
        truncated += sum(len(ids) > max_length for ids in encoded["input_ids"])
    return truncated


class TaskDataset(torch.utils.data.Dataset):
    """
    The records of a split with their images, opened with the package's safe loader (`open_image`: any mode to RGB,
    paths confined to the split's image directory, decompression bombs refused).

    With `shuffle=True`, item `i` of epoch `e` is record `permutation(seed, e)[i]`: the order is a pure function of
    `(seed, epoch)`, the same in every process (accelerate shards the sequential batches) and after a resume. Call
    `set_epoch` before iterating (accelerate's prepared loader does it from `set_epoch`).

    Args:
        records (`Sequence[TaskRecord]`): The items.
        image_dir (`str`): The directory the image paths must lie in.
        shuffle (`bool`, *optional*, defaults to `False`): Draw a new order every epoch.
        seed (`int`, *optional*, defaults to 0): Seed of the orders.
    """

    def __init__(self, records: Sequence[TaskRecord], image_dir: str, shuffle: bool = False, seed: int = 0):
        self.records = list(records)
        self.image_dir = image_dir
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(len(self.records))

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose order `__getitem__` follows."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._order = self._permutation(self.epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        position = int(self._order[index]) if self._order is not None else int(index)
        record = self.records[position]
        # A missing, corrupt or unsafe image raises ImageLoadError / UnsafePathError naming the file.
        images = [open_image(path, root=self.image_dir) for path in record.images]
        return {"index": position, "record": record, "images": images}


def evaluation_dataloaders(
    data: TaskData | None, task: str, collator, batch_size: int, num_workers: int = 0, seed: int = 0
) -> dict[str, torch.utils.data.DataLoader]:
    """
    The loaders `evaluate_task` reads for a split, in record order: `"examples"`, or for retrieval the gallery's
    `"images"` and `"texts"`; empty for no split.

    Args:
        data (`TaskData`, *optional*): The split.
        task (`str`): The task.
        collator (`TaskCollator`): The task's collator.
        batch_size (`int`): Items per batch.
        num_workers (`int`, *optional*, defaults to 0): Worker processes.
        seed (`int`, *optional*, defaults to 0): Seed of the loaders' own generators (kept off the global RNG).
    """
    if data is None:
        return {}
    parts = dict(zip(("images", "texts"), data.gallery_records())) if task == "retrieval" else {}
    return {
        name: torch.utils.data.DataLoader(
            TaskDataset(records, data.image_dir),
            batch_size=batch_size,
            collate_fn=collator,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
        )
        for name, records in (parts or {"examples": data.records}).items()
    }


class TaskCollator:
    """
    A batch of `TaskDataset` items for the task model: the texts tokenised (`padding=True, truncation=True` at the
    text tower's positions), the images through the image processor, and the targets.

    Returns a dict with `input_ids`/`attention_mask` (when the items have texts), `pixel_values` (when they have
    images: `(B, 3, H, W)`, or `(B, 2, 3, H, W)` for NLVR2), `labels` (VQA: `(B, num_labels)` soft scores;
    SNLI-VE/NLVR2: `(B,)` classes), `example_index` (each item's record), and for retrieval `image_ids`/`text_ids`.

    Args:
        processor: The processor (its `tokenizer` and `image_processor` are used).
        task (`str`): The task.
        max_length (`int`): Token positions of the text tower.
        num_labels (`int`, *optional*): VQA: the answer classes.
    """

    def __init__(self, processor, task: str, max_length: int, num_labels: int | None = None):
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.task = task
        self.max_length = max_length
        self.num_labels = num_labels

    def __call__(self, items: Sequence[dict]) -> dict:
        records = [item["record"] for item in items]
        batch = {"example_index": torch.tensor([item["index"] for item in items], dtype=torch.long)}
        texts = [record.text for record in records if record.text is not None]
        if texts:
            tokens = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            batch["input_ids"], batch["attention_mask"] = tokens["input_ids"], tokens["attention_mask"]
        images = [image for item in items for image in item["images"]]
        if images:
            pixel_values = self.image_processor(images, return_tensors="pt")["pixel_values"]
            per_example = len(items[0]["images"])
            if per_example > 1:
                pixel_values = pixel_values.view(len(items), per_example, *pixel_values.shape[1:])
            batch["pixel_values"] = pixel_values
        if self.task == "vqa" and self.num_labels is not None:
            labels = torch.zeros(len(records), self.num_labels)
            for row, record in enumerate(records):
                if record.answer_labels:
                    labels[row, list(record.answer_labels)] = torch.tensor(record.answer_scores)
            batch["labels"] = labels
        elif self.task in ("snli_ve", "nlvr2") and records[0].label is not None:
            batch["labels"] = torch.tensor([record.label for record in records], dtype=torch.long)
        elif self.task == "retrieval":
            batch["image_ids"] = torch.tensor([record.image_id for record in records], dtype=torch.long)
            batch["text_ids"] = torch.tensor([record.text_id for record in records], dtype=torch.long)
        return batch


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------
def _preview(labels: Sequence[str], count: int = 5) -> str:
    shown = ", ".join(repr(label) for label in labels[:count])
    return f"[{shown}{', ...' if len(labels) > count else ''}]"


def check_checkpoint_labels(config_dict: dict, task: str, labels: Sequence[str], name_or_path: str, source: str):
    """
    A task checkpoint (one saved by `KnowledgeCLIPForQuestionAnswering` or `KnowledgeCLIPForImageTextClassification`)
    carries its classes in `id2label`: they must be the data's, in the same order, and its `num_images` the task's.

    Args:
        config_dict (`dict`): The checkpoint's `config.json`.
        task (`str`): The task.
        labels (`Sequence[str]`): The data's classes in label order (VQA: the answer vocabulary).
        name_or_path (`str`): The checkpoint, for the message.
        source (`str`): Where `labels` come from, for the message.

    Raises:
        TrainingConfigurationError: naming both label lists and the first difference.
    """
    architectures = set(config_dict.get("architectures") or ())
    if not architectures & TASK_ARCHITECTURES:
        return  # a pre-trained Knowledge-CLIP or CLIP checkpoint: its head is new
    id2label = config_dict.get("id2label") or {}
    checkpoint_labels = [id2label[key] for key in sorted(id2label, key=int)]
    expected_class = TASK_MODEL_CLASSES[task].__name__
    num_images = config_dict.get("num_images", 1)
    if checkpoint_labels != list(labels) or expected_class not in architectures or num_images != TASK_NUM_IMAGES[task]:
        difference = next(
            (f"label {i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(checkpoint_labels, labels)) if a != b),
            f"{len(checkpoint_labels)} vs {len(labels)} labels",
        )
        if checkpoint_labels == list(labels):
            difference = f"{sorted(architectures)} with num_images={num_images} is not a --task {task} model"
        raise TrainingConfigurationError(
            f"--model_name_or_path {name_or_path}: its id2label ({len(checkpoint_labels)} labels "
            f"{_preview(checkpoint_labels)}) disagrees with {source} ({len(labels)} labels {_preview(list(labels))}); "
            f"first difference: {difference}. Fine-tune from the pre-trained Knowledge-CLIP checkpoint instead, or "
            "use the same data."
        )


def load_finetuning_model(
    task: str,
    model_args: ModelArguments,
    labels: Sequence[str] = (),
    source: str = "the data",
    task_model_settings: Mapping[str, str] | None = None,
):
    """
    The model and processor of a fine-tuning run.

    - `--task vqa|snli_ve|nlvr2`: `KnowledgeCLIPForQuestionAnswering` / `KnowledgeCLIPForImageTextClassification`
      (`num_images` 1, 1, 2) with `id2label` from `labels`. From a Knowledge-CLIP checkpoint the pre-trained fusion
      encoder is kept; from a plain CLIP checkpoint a fresh one is built with `--fusion_*` sizes (so that the CLIP
      baseline has the Knowledge-CLIP model's fusion size); a task checkpoint must have the same labels
      (`check_checkpoint_labels`).
    - `--task retrieval`: `KnowledgeCLIPModel` (`from_pretrained`, or `from_clip` for a CLIP checkpoint); only its
      towers, projections and `logit_scale` are trained, its knowledge modules are frozen and saved unchanged.

    Dropout switches (`--drop_path_rate`, `--disable_dropout`) apply to either kind of checkpoint.

    Args:
        task (`str`): The task.
        model_args (`ModelArguments`): Checkpoint, fusion sizes, dropout.
        labels (`Sequence[str]`, *optional*): The classes in label order (not for retrieval).
        source (`str`, *optional*): Where `labels` come from, for error messages.
        task_model_settings (`Mapping[str, str]`, *optional*): `joint_relation` / `task_head_inputs` of a task
            model; the checkpoint's when absent. A task checkpoint keeps its own (its weights depend on them).

    Returns:
        `tuple`: the model (training mode left to the caller), the `KnowledgeCLIPProcessor`, and a dict with
        `checkpoint_type` (`"clip"` or `"knowledge_clip"`), `new_modules` (the freshly initialised modules, in words)
        and `new_parameters` (the names of their trainable parameters: what the checkpoint did not have, for
        `finetuning_parameter_groups`).

    Raises:
        TrainingConfigurationError: an unreadable checkpoint, another model type, fusion sizes for a Knowledge-CLIP
            checkpoint, or a task checkpoint with other labels or other `task_model_settings`.
    """
    path = model_args.model_name_or_path
    config_dict = read_config(path, "--model_name_or_path")
    model_type = config_dict.get("model_type")
    if model_type not in ("clip", "knowledge_clip"):
        raise TrainingConfigurationError(
            f"--model_name_or_path {path}: expected a CLIP or Knowledge-CLIP checkpoint, got {model_type!r}."
        )
    fusion_sizes = model_args.fusion_size_overrides()
    fusion = fusion_sizes | model_args.fusion_dropout_overrides()
    overrides = {}
    is_task_checkpoint = bool(set(config_dict.get("architectures") or ()) & TASK_ARCHITECTURES)
    for name, value in (task_model_settings or {}).items():
        saved = config_dict.get(name, KnowledgeCLIPConfig.__dataclass_fields__[name].default)
        if is_task_checkpoint and value != saved:
            raise TrainingConfigurationError(f"--{name} {value}: the task checkpoint {path} was trained with {saved}.")
        overrides[name] = value
    if model_type == "knowledge_clip":
        if fusion_sizes:
            raise TrainingConfigurationError(
                f"--model_name_or_path {path}: a Knowledge-CLIP checkpoint keeps its fusion encoder sizes "
                f"({', '.join('--fusion_' + _FUSION_FLAGS[name] for name in fusion_sizes)} cannot change)."
            )
        if fusion:  # merged into the checkpoint's fusion config
            overrides["fusion_encoder_config"] = fusion
        if model_args.disable_dropout:
            overrides |= {name: {"attention_dropout": 0.0} for name in ("text_config", "vision_config")}
        if task != "retrieval":
            check_checkpoint_labels(config_dict, task, labels, path, source)
    else:
        overrides["fusion_encoder_config"] = fusion
        if model_args.disable_dropout:  # a CLIP sub-config given as a dict replaces it whole
            clip_config = CLIPConfig.from_pretrained(path)
            overrides |= {
                name: getattr(clip_config, name).to_dict() | {"attention_dropout": 0.0}
                for name in ("text_config", "vision_config")
            }

    # Loading reports every new weight as MISSING at WARNING level: expected here; the new modules are logged below.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        if task == "retrieval":
            if model_type == "clip":
                model = KnowledgeCLIPModel.from_clip(path, **overrides)
            else:
                model = KnowledgeCLIPModel.from_pretrained(path, **overrides)
            # Retrieval trains CLIP's towers with CLIP's loss: the knowledge modules get no gradient.
            for module in (model.text_to_fusion, model.vision_to_fusion, model.fusion_encoder):
                module.requires_grad_(False)
            model.relation_head.requires_grad_(False)
            model.graph_head.requires_grad_(False)
            new_modules = ["fusion encoder (frozen, unused)"] if model_type == "clip" else []
            new_parameters = frozenset()  # what from_clip adds is frozen above
        else:
            id2label = dict(enumerate(labels))
            model, loading_info = TASK_MODEL_CLASSES[task].from_pretrained(
                path,
                id2label=id2label,
                label2id={label: index for index, label in id2label.items()},
                num_images=TASK_NUM_IMAGES[task],
                output_loading_info=True,
                **overrides,
            )
            new_parameters = frozenset(loading_info["missing_keys"])
            new_modules = [] if is_task_checkpoint else ["classifier"]
            if model.task_token is not None and not is_task_checkpoint:
                new_modules.append("task token")
            if model_type == "clip":
                new_modules.insert(0, "fusion encoder")
    finally:
        transformers_logging.set_verbosity(verbosity)

    if model_type == "clip":
        clip_processor = CLIPProcessor.from_pretrained(path)
        base = model if task == "retrieval" else model.knowledge_clip
        processor = KnowledgeCLIPProcessor(
            clip_processor.image_processor, clip_processor.tokenizer, relation_vocab=list(base.config.relation_vocab)
        )
    else:
        processor = KnowledgeCLIPProcessor.from_pretrained(path)
    info = {"checkpoint_type": model_type, "new_modules": new_modules, "new_parameters": new_parameters}
    return model, processor, info


_FUSION_FLAGS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
}


def finetuning_parameter_groups(
    model,
    learning_rate: float,
    new_modules_learning_rate: float,
    weight_decay: float,
    new_parameters: Collection[str],
) -> list[dict]:
    """
    AdamW groups of a model to fine-tune: what the checkpoint trained (`pretrained`) at `learning_rate`, what loading
    initialised (`new_modules`: the task head and task token; the fusion encoder too when the checkpoint is a plain
    CLIP) at `new_modules_learning_rate`; decay on weight matrices only, as in pre-training.

    A pre-trained fusion encoder is not new: fine-tuned at the new modules' rate, it loses what pre-training put in it.
    On the demo world (seed 0), the pre-trained fusion encoder ranked the right colour first for 5 of the 7
    test-partition colour facts; after VQA fine-tuning with it at 1e-3 for 3 of them, at 1e-4 for 4 (docs/results.md).

    Args:
        model: The task model or `KnowledgeCLIPModel` (not wrapped).
        learning_rate (`float`): Learning rate of the pre-trained parameters.
        new_modules_learning_rate (`float`): Learning rate of the freshly initialised ones.
        weight_decay (`float`): Decay of the weight matrices.
        new_parameters (`Collection[str]`): Names of the freshly initialised parameters, as `load_finetuning_model`
            returns them.

    Returns:
        `list[dict]`: Non-empty groups with `params`, `lr`, `weight_decay` and a `name` (`pretrained/decay`,
        `new_modules/no_decay`, ...).
    """
    new_parameters = frozenset(new_parameters)
    return decay_groups(
        model,
        new_parameters.__contains__,
        {"pretrained": learning_rate, "new_modules": new_modules_learning_rate},
        weight_decay,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Steps and evaluation
# ---------------------------------------------------------------------------------------------------------------------
MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values", "labels")


def task_forward(model, batch: Mapping[str, torch.Tensor], task: str, accelerator: Accelerator) -> Mapping:
    """
    The task loss of one (micro-)batch.

    VQA, SNLI-VE, NLVR2: the task model's own loss (binary cross-entropy on soft scores, cross-entropy). Retrieval:
    CLIP's contrastive loss (`knowledge_clip.losses.clip_loss`) between the towers' embeddings, over the global batch
    with several processes (`FeatureGather` keeps the gradient, `accelerator.gather` would not), with an image's other
    captions masked out of its negatives.

    Args:
        model: The prepared model.
        batch (`Mapping`): A `TaskCollator` batch on the device.
        task (`str`): The task.
        accelerator (`Accelerator`): The run's accelerator.

    Returns:
        A mapping with `loss` (the model output itself for the task models).
    """
    inputs = {name: batch[name] for name in MODEL_INPUTS if name in batch}
    if task != "retrieval":
        return model(**inputs)
    output = model(**inputs)
    gather = FeatureGather() if accelerator.num_processes > 1 else None
    logit_scale = accelerator.unwrap_model(model).logit_scale
    loss = clip_loss(
        output.image_embeds, output.text_embeds, batch["image_ids"], batch["text_ids"], logit_scale, gather
    )
    return {"loss": loss}


@torch.no_grad()
def evaluate_task(
    model,
    dataloaders: Mapping[str, torch.utils.data.DataLoader],
    task: str,
    data: TaskData,
    accelerator: Accelerator,
    max_batches: int | None = None,
    subsets: Mapping[str, Collection] | None = None,
    reranking: RetrievalReranking | None = None,
) -> dict[str, float] | None:
    """
    The task metric on a validation split, with every process's predictions gathered (`gather_for_metrics`, which
    drops the samples an uneven last batch repeats).

    - VQA: `vqa_accuracy` (the official evaluator's rules, `load_metric("vqa_accuracy")`) of the best-scored answer
      against the human answers, and `vqa_accuracy_<answer type>`;
    - SNLI-VE, NLVR2: `accuracy` (`topk_accuracy`'s top-1 on the predicted class);
    - retrieval: image->text and text->image Recall@1/5/10 (`retrieval_ranks` and `retrieval_recall`, the package's
      retrieval evaluation) of the towers' embeddings over the whole gallery, and `mean_recall` (their mean); with
      `reranking`, the same metrics after the fusion encoder re-ranks each query's top-k, prefixed `reranked_`.

    Args:
        model: The prepared model (put in eval mode here; the caller restores training mode).
        dataloaders (`Mapping[str, DataLoader]`): Prepared loaders: `"examples"` (VQA, classification), or
            `"images"` and `"texts"` (retrieval: the gallery and the captions).
        task (`str`): The task.
        data (`TaskData`): The split (references, labels, gallery).
        accelerator (`Accelerator`): The run's accelerator.
        max_batches (`int`, *optional*): Per-process batch cap (VQA and classification only).
        subsets (`Mapping[str, Collection]`, *optional*): VQA and classification: named sets of example ids
            (`TaskData.example_ids`, e.g. a knowledge split). Each subset's metrics are added as `<name>/<metric>`
            with `<name>/num_examples`, over the evaluated examples whose id it holds.
        reranking (`RetrievalReranking`, *optional*): Retrieval only: also score the re-ranked ranks.

    Returns:
        `dict[str, float]` on the main process (metrics computed there), `None` on the others.

    Raises:
        ValueError: `subsets` for retrieval, or a subset that names no evaluated example.
    """
    model.eval()
    if task == "retrieval":
        if subsets:
            raise ValueError("subsets are scored for VQA and classification, not retrieval (a gallery has no subset)")
        return _evaluate_retrieval(model, dataloaders, data, accelerator, reranking)
    predictions, indices = [], []
    for step, batch in enumerate(dataloaders["examples"]):
        if max_batches is not None and step >= max_batches:
            break
        inputs = {name: batch[name] for name in MODEL_INPUTS if name in batch and name != "labels"}
        logits = model(**inputs).logits
        predicted, index = accelerator.gather_for_metrics((logits.argmax(dim=-1), batch["example_index"]))
        predictions.append(predicted.cpu())
        indices.append(index.cpu())
    if not accelerator.is_main_process:
        return None
    predicted = torch.cat(predictions).tolist()
    index = torch.cat(indices).tolist()
    metrics = _prediction_metrics(task, data, predicted, index)
    for name, ids in (subsets or {}).items():
        ids = set(ids)
        kept = [position for position, i in enumerate(index) if data.example_ids[i] in ids]
        if not kept:
            raise ValueError(f"subset {name!r} holds none of the {len(index)} evaluated examples' ids")
        scores = _prediction_metrics(task, data, [predicted[k] for k in kept], [index[k] for k in kept])
        metrics |= {f"{name}/{metric}": value for metric, value in scores.items()}
    return metrics


def _prediction_metrics(task: str, data: TaskData, predicted: list[int], index: list[int]) -> dict[str, float]:
    """The task metric of predicted classes `predicted` for the examples `index` of `data`."""
    if task == "vqa":
        answers = [data.labels[p] for p in predicted]
        result = load_metric("vqa_accuracy").compute(
            predictions=answers,
            references=[data.references[i] for i in index],
            answer_types=[data.answer_types[i] for i in index],
        )
        metrics = {"vqa_accuracy": result["accuracy"]}
        metrics |= {f"vqa_accuracy_{kind}": value for kind, value in result["accuracy_per_answer_type"].items()}
    else:
        one_hot = np.eye(len(data.labels))[predicted]
        result = load_metric("topk_accuracy").compute(
            predictions=one_hot.tolist(), references=[data.references[i] for i in index], top_k=1
        )
        metrics = {"accuracy": result["top1_accuracy"]}
    return metrics | {"num_examples": float(len(index))}


def _gather_embeddings(loader, encode, accelerator: Accelerator, size: int) -> torch.Tensor:
    rows, indices = [], []
    for batch in loader:
        embeds, index = accelerator.gather_for_metrics((encode(batch).float(), batch["example_index"]))
        rows.append(embeds.cpu())
        indices.append(index.cpu())
    embeds, index = torch.cat(rows), torch.cat(indices)
    ordered = torch.zeros(size, embeds.shape[1])
    ordered[index] = embeds
    return torch.nn.functional.normalize(ordered, dim=-1)


@dataclass
class RetrievalReranking:
    """
    Re-ranking of retrieval by the fusion encoder: each query's `top_k` candidates by the towers are re-ordered by the
    towers' cosine plus the E2E cosine `cos(Y(image, relation, -), Y(-, -, caption))` (Eq. 8's similarity, with
    the image-caption relation of pre-training), computed as two factorised embeddings so that no pair needs its
    own fusion pass.

    Args:
        top_k (`int`): Candidates re-ranked per query.
        relation_input_ids, relation_attention_mask (`torch.Tensor` of shape `(1, seq_len)`): The tokenised relation
            text (`"image of"`, the relation of the image-caption triplets `load_image_text_pairs` builds).
    """

    top_k: int
    relation_input_ids: torch.Tensor
    relation_attention_mask: torch.Tensor

    @classmethod
    def from_processor(cls, processor, top_k: int, relation: str = IMAGE_OF) -> RetrievalReranking:
        tokens = processor.tokenizer([relation], padding=True, return_tensors="pt")
        return cls(top_k, tokens["input_ids"], tokens["attention_mask"])


def _evaluate_retrieval(
    model, dataloaders, data: TaskData, accelerator: Accelerator, reranking: RetrievalReranking | None = None
) -> dict[str, float] | None:
    unwrapped = accelerator.unwrap_model(model)
    with accelerator.autocast():
        image_embeds = _gather_embeddings(
            dataloaders["images"],
            lambda batch: unwrapped.get_image_features(pixel_values=batch["pixel_values"]).pooler_output,
            accelerator,
            len(data.gallery),
        )
        text_embeds = _gather_embeddings(
            dataloaders["texts"],
            lambda batch: (
                unwrapped.get_text_features(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).pooler_output
            ),
            accelerator,
            len(data.records),
        )
        if reranking is not None:
            fusion_image_embeds, fusion_text_embeds = _fusion_retrieval_embeddings(
                unwrapped, dataloaders, data, accelerator, reranking
            )
    if not accelerator.is_main_process:
        return None
    text_to_image = torch.tensor(data.text_to_image)
    metrics = _recall_metrics(*retrieval_ranks(image_embeds, text_embeds, text_to_image), data)
    if reranking is not None:
        ranks = reranked_retrieval_ranks(
            image_embeds, text_embeds, text_to_image, fusion_image_embeds, fusion_text_embeds, reranking.top_k
        )
        metrics |= {f"reranked_{name}": value for name, value in _recall_metrics(*ranks, data).items()}
    return metrics | {"num_images": float(len(data.gallery)), "num_texts": float(len(data.records))}


def _recall_metrics(image_ranks: torch.Tensor, text_ranks: torch.Tensor, data: TaskData) -> dict[str, float]:
    """Recall@k both ways from the ranks, and `mean_recall`, their mean."""
    recall = load_metric("retrieval_recall")
    metrics = {}
    for direction, ranks, gallery in (
        ("image_to_text", image_ranks, len(data.records)),
        ("text_to_image", text_ranks, len(data.gallery)),
    ):
        scores = recall.compute(
            predictions=ranks.tolist(), references=[gallery] * len(ranks), recall_at=list(RECALL_AT)
        )
        metrics |= {f"{direction}_recall@{k}": scores[f"recall@{k}"] for k in RECALL_AT}
    metrics["mean_recall"] = sum(metrics.values()) / len(metrics)
    return metrics


def _fusion_retrieval_embeddings(
    model, dataloaders, data: TaskData, accelerator: Accelerator, reranking: RetrievalReranking
) -> tuple[torch.Tensor, torch.Tensor]:
    """The second-stage embeddings of the gallery, `Y(image, relation, -)`, and of the captions, `Y(-, -, caption)`."""
    relation = {
        "relation_input_ids": reranking.relation_input_ids.to(accelerator.device),
        "relation_attention_mask": reranking.relation_attention_mask.to(accelerator.device),
    }

    def encode_images(batch):
        entities = model.encode_entity_features(entity_pixel_values=batch["pixel_values"], **relation)
        slots = torch.arange(batch["pixel_values"].shape[0], device=accelerator.device)
        return model.encode_queries(entities, torch.stack([slots, torch.zeros_like(slots)], dim=1))

    def encode_texts(batch):
        entities = model.encode_entity_features(
            entity_input_ids=batch["input_ids"], entity_attention_mask=batch["attention_mask"]
        )
        return model.encode_entities(entities)

    return (
        _gather_embeddings(dataloaders["images"], encode_images, accelerator, len(data.gallery)),
        _gather_embeddings(dataloaders["texts"], encode_texts, accelerator, len(data.records)),
    )


class FinetuningHistory:
    """
    The best evaluation so far and the run's logged records, registered with `accelerator.register_for_checkpointing`
    so that a resumed run continues them exactly (the best-model decisions included).

    Args:
        metric (`str`): The metric that picks the best model (higher is better).
    """

    def __init__(self, metric: str):
        self.metric = metric
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.train_history: list[dict] = []
        self.eval_history: list[dict] = []

    def update(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Records an evaluation; `True` when it is strictly better than every earlier one."""
        self.eval_history.append({"step": step, **metrics})
        value = metrics[self.metric]
        if self.best_metric is None or value > self.best_metric:
            self.best_metric, self.best_step = float(value), step
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "metric": self.metric,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "train_history": self.train_history,
            "eval_history": self.eval_history,
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.best_metric, self.best_step = state["best_metric"], state["best_step"]
        self.train_history, self.eval_history = list(state["train_history"]), list(state["eval_history"])


def label_fingerprint(labels: Sequence[str]) -> str:
    """A short hash of the class list, for `run_compatibility` (a resumed run must predict the same classes)."""
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------
def save_model_atomically(model, processor, directory: str, card: ModelCard | None = None) -> None:
    """
    `save_pretrained` of the model and processor (and the card as `README.md`) into `directory`, replacing it only
    once the new files are complete: written to a hidden sibling, then swapped in by renames.

    Args:
        model: The model (not wrapped).
        processor: Its processor.
        directory (`str`): The target directory (e.g. `output_dir/best`).
        card (`ModelCard`, *optional*): The model card.
    """
    parent, name = os.path.split(os.path.abspath(directory))
    staging, old = os.path.join(parent, f".tmp-{name}"), os.path.join(parent, f".old-{name}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    processor.save_pretrained(staging)
    processor.image_processor.save_pretrained(staging)  # older clients read preprocessor_config.json
    if card is not None:
        card.save(os.path.join(staging, "README.md"))
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(directory):
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_license(name_or_path: str) -> str | None:
    """The `license` of a local checkpoint's model card (`README.md`), if it has one."""
    readme = os.path.join(name_or_path, "README.md")
    if not os.path.isfile(readme):
        return None
    try:
        return ModelCard.load(readme).data.license
    except (ValueError, OSError):
        return None


def resolve_finetuning_license(license: str | None, name_or_path: str) -> str:
    """
    The license of the fine-tuned model: `--license`, else the local checkpoint card's, else the one of a known base
    model (`hub.resolve_license`).

    Raises:
        TrainingConfigurationError: when none can be told.
    """
    try:
        return hub.resolve_license(license or checkpoint_license(name_or_path), name_or_path)
    except ValueError as error:
        raise TrainingConfigurationError(f"--license: {error}") from None


def finetuned_model_card(
    task: str,
    config: KnowledgeCLIPConfig,
    repo_id: str,
    license: str,
    base_model: str | None = None,
    dataset_name: str | None = None,
    metrics: Mapping[str, float] | None = None,
    training_args: Mapping | None = None,
    provenance: str | None = None,
) -> ModelCard:
    """
    The model card of a fine-tuned model.

    Retrieval fine-tunes a `KnowledgeCLIPModel`: `hub.create_model_card` (pipeline `zero-shot-image-classification`)
    with the Recall@k results. The task models get a short card of their own, because `hub.create_model_card` always
    writes the zero-shot pipeline: `pipeline_tag: visual-question-answering` for VQA; none for SNLI-VE and NLVR2 (the
    Hub has no image-text classification task), which carry `visual-entailment` / `nlvr2` tags instead.

    Args:
        task (`str`): The task.
        config (`KnowledgeCLIPConfig`): The fine-tuned model's configuration (sizes, labels).
        repo_id (`str`): The Hub id the card is written for (`local/<name>` when not pushed).
        license (`str`): License id.
        base_model (`str`, *optional*): Hub id of the checkpoint fine-tuning started from.
        dataset_name (`str`, *optional*): The fine-tuning dataset's name.
        metrics (`Mapping[str, float]`, *optional*): The evaluation of the model the card describes.
        training_args (`Mapping`, *optional*): Training settings to list.
        provenance (`str`, *optional*): A paragraph saying how the model was made and what its results mean.
    """
    metrics = {k: v for k, v in (metrics or {}).items() if k in TASK_METRICS[task] or k.startswith("vqa_accuracy")}
    if task == "retrieval":
        dataset = dataset_name or "retrieval"
        results = retrieval_card_results(metrics, dataset)
        return hub.create_model_card(
            config,
            repo_id,
            base_model=base_model,
            license=license,
            datasets=[dataset],
            eval_results=results,
            training_args=training_args,
            tags=list(RETRIEVAL_TAGS),
            provenance=provenance,
        )

    dataset = dataset_name or DEFAULT_DATASET_NAMES[task]
    eval_results = hub.eval_results_from_dict({f"{CARD_TASK_NAMES[task]}/{dataset}": metrics}) if metrics else None
    card_data = ModelCardData(
        language="en",
        license=license,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAGS[task],
        base_model=base_model,
        datasets=[dataset],
        tags=list(dict.fromkeys([*hub.CARD_TAGS, *TASK_TAGS[task], "fine-tuned"])),
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results,
    )
    fusion = config.fusion_encoder_config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    usage = _CARD_USAGE[task].format(repo_id=repo_id)
    source = (
        f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a Knowledge-CLIP or CLIP checkpoint"
    )
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"{_CARD_TASK_TEXT[task]} fine-tuned with `knowledge-clip` (`examples/finetune.py --task {task}`) from "
        f"{source} on {dataset}.",
        "",
        "The model reads an image and a text together: the fusion encoder of Knowledge-CLIP (Pan et al., NeurIPS "
        f"2022, [arXiv:{hub.PAPER_ARXIV_ID}](https://arxiv.org/abs/{hub.PAPER_ARXIV_ID})) encodes the sequence with the "
        f"image's tokens in the head slot, the text's in the tail slot and {_CARD_RELATION_SLOT[config.joint_relation]}, "
        f"and a classifier reads {_CARD_HEAD_INPUTS[config.task_head_inputs]}.",
        "",
        *([provenance, ""] if provenance else []),
        "## Model",
        "",
        "| Setting | Value |",
        "|---|---|",
        f"| Image tower | {config.vision_config.num_hidden_layers} layers, width {config.vision_config.hidden_size}, "
        f"patch {config.vision_config.patch_size}, image size {config.vision_config.image_size} |",
        f"| Text tower | {config.text_config.num_hidden_layers} layers, width {config.text_config.hidden_size}, "
        f"{config.text_config.max_position_embeddings} positions |",
        f"| Fusion encoder | {fusion.num_hidden_layers} layers, width {fusion.hidden_size}, "
        f"{fusion.num_attention_heads} heads |",
        f"| Images per example | {config.num_images} |",
        f"| Classes | {len(labels)}: {', '.join(f'`{label}`' for label in labels[:20])}"
        f"{', ...' if len(labels) > 20 else ''} |",
    ]
    for name, value in (training_args or {}).items():
        lines.append(f"| `{name}` | {value} |")
    if metrics:
        lines += ["", "## Evaluation", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in metrics.items()]
    lines += ["", "## How to use", "", usage, "", "## Intended uses and limitations", "", _CARD_LIMITATIONS]
    lines += ["", "## Citation", "", "```bibtex", hub.PAPER_BIBTEX, "```", ""]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))


_CARD_LIMITATIONS = (
    "**Intended use.** Research on vision-language models: the task it was fine-tuned for, on data like its "
    "fine-tuning data, and the study of what knowledge pre-training changes downstream.\n\n"
    "**Out-of-scope use.** Any deployed use without in-domain testing; other tasks, answer sets or label sets than "
    "the fine-tuning data's (the classifier knows only its classes); languages other than English; surveillance.\n\n"
    "**Limitations.** A classifier over a joint image-text representation can score well from the text alone: "
    "check a model against the same test examples with their images shuffled before reading its accuracy as "
    "visual understanding. The model inherits the biases of its base CLIP and of its pre-training and fine-tuning "
    "data."
)
# The card says what the model's config makes it read (`joint_relation`, `task_head_inputs`).
_CARD_RELATION_SLOT = {"masked": "the relation slot masked", "task_token": "a learned task token in the relation slot"}
_CARD_HEAD_INPUTS = {
    "joint": "its joint representation `Y(image, -, text)`",
    "joint_and_towers": "its joint representation `Y(image, -, text)` beside the towers' L2-normalised embeddings `u` "
    "(image) and `v` (text) and their product `u ⊙ v`",
}
_CARD_TASK_TEXT = {
    "vqa": "Knowledge-CLIP for visual question answering (`KnowledgeCLIPForQuestionAnswering`),",
    "snli_ve": "Knowledge-CLIP for visual entailment (`KnowledgeCLIPForImageTextClassification`, one image),",
    "nlvr2": "Knowledge-CLIP for NLVR2 (`KnowledgeCLIPForImageTextClassification`, two images),",
}
_CARD_USAGE = {
    "vqa": """```python
from transformers import AutoModelForVisualQuestionAnswering, AutoProcessor, pipeline

model = AutoModelForVisualQuestionAnswering.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
# with the knowledge_clip package imported: its "knowledge-visual-question-answering" pipeline
pipe = pipeline("knowledge-visual-question-answering", model=model, processor=processor)
pipe(image="photo.jpg", question="what colour is the bus?", top_k=3)
```""",
    "snli_ve": """```python
from PIL import Image
from transformers import AutoModelForSequenceClassification, AutoProcessor

model = AutoModelForSequenceClassification.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = processor(text=["two dogs play in the snow"], images=[Image.open("photo.jpg")], return_tensors="pt")
print(model.config.id2label[model(**inputs).logits.argmax(-1).item()])
```""",
    "nlvr2": """```python
from PIL import Image
from transformers import AutoModelForSequenceClassification, AutoProcessor

model = AutoModelForSequenceClassification.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
images = [[Image.open("left.png"), Image.open("right.png")]]
inputs = processor(text=["one image shows exactly two dogs"], images=images, return_tensors="pt")
print(model.config.id2label[model(**inputs).logits.argmax(-1).item()])
```""",
}


def retrieval_card_results(metrics: Mapping[str, float], dataset: str) -> dict[str, dict[str, float]]:
    """Retrieval Recall@k as `hub.create_model_card` results (`image_retrieval` = text -> image)."""
    results = {}
    for key, direction in (("image_retrieval", "text_to_image"), ("text_retrieval", "image_to_text")):
        values = {
            f"recall@{k}": metrics[f"{direction}_recall@{k}"]
            for k in RECALL_AT
            if f"{direction}_recall@{k}" in metrics
        }
        if values:
            results[f"{key}/{dataset}"] = values
    return results


PUSH_IGNORE_PATTERNS = ["checkpoints/*", "logs/*", "best/*", ".*", "*/.*", "metrics.json"]
"""What `push_finetuned_model` leaves out of an output directory: checkpoints, logs, the best model's own folder."""


def push_finetuned_model(
    task: str,
    directory: str,
    processor,
    repo_id: str,
    card_kwargs: Mapping,
    metrics: Mapping[str, float] | None = None,
    private: bool = False,
    api: HfApi | None = None,
) -> dict[str, str]:
    """
    Publishes a saved fine-tuned model (`output_dir/best`, or `output_dir` itself) to `repo_id`.

    Retrieval models are `KnowledgeCLIPModel`s and go through `hub.push_to_hub`: the full model and its CLIP export
    (`<repo_id>-clip`), with Recall@k on both cards. Task models are uploaded as the folder holds them (weights, custom
    code, processor) with a card for `repo_id`; checkpoints and logs are left out.

    Args:
        task (`str`): The task.
        directory (`str`): The saved model.
        processor: Its processor.
        repo_id (`str`): `namespace/name`.
        card_kwargs (`Mapping`): `license`, `base_model`, `dataset_name`, `training_args` of `finetuned_model_card`.
        metrics (`Mapping[str, float]`, *optional*): The saved model's evaluation.
        private (`bool`, *optional*, defaults to `False`): Create new repositories as private.
        api (`HfApi`, *optional*): The client; `HfApi()` (token from `HF_TOKEN` or the login cache) when omitted.

    Returns:
        `dict[str, str]`: the commit URL of each repository, by repo id.
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise TrainingConfigurationError(f"--hub_model_id must be '<namespace>/<name>', got {repo_id!r}.")
    if task == "retrieval":
        model = KnowledgeCLIPModel.from_pretrained(directory)
        dataset = card_kwargs.get("dataset_name") or "retrieval"
        return hub.push_to_hub(
            model,
            processor,
            repo_id,
            private=private,
            api=api,
            base_model=card_kwargs.get("base_model"),
            license=card_kwargs["license"],
            datasets=[dataset],
            eval_results=retrieval_card_results(metrics or {}, dataset),
            training_args=card_kwargs.get("training_args"),
            tags=list(RETRIEVAL_TAGS),
        )
    config = KnowledgeCLIPConfig.from_pretrained(directory)
    finetuned_model_card(task, config, repo_id, metrics=metrics, **card_kwargs).save(
        os.path.join(directory, "README.md")
    )
    api = api or HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=directory,
        commit_message="Upload fine-tuned Knowledge-CLIP",
        ignore_patterns=PUSH_IGNORE_PATTERNS,
    )
    return {repo_id: str(getattr(commit, "commit_url", commit))}


def write_json(path: str, value) -> None:
    """Writes `value` as indented JSON (main process only)."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=1)
