# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The models of a pre-training run: the Knowledge-CLIP student, its processor and the frozen KD teacher."""

from transformers import CLIPConfig, CLIPModel, CLIPProcessor, PretrainedConfig
from transformers.utils import logging as transformers_logging

from ..modeling_knowledge_clip import KnowledgeCLIPModel
from ..processing_knowledge_clip import KnowledgeCLIPProcessor
from .arguments import ModelArguments
from .errors import TrainingConfigurationError

__all__ = ["load_pretraining_models", "load_teacher"]

# The CLIP towers' sub-configs. Their only dropout is `attention_dropout` (transformers 5's CLIP has no other).
TOWER_CONFIGS = ("text_config", "vision_config")


def read_config(name_or_path: str, flag: str) -> dict:
    """The config dict of a checkpoint (a folder or a Hub id); one that cannot be read is a one-line error naming
    `flag`, the command-line flag that gave it."""
    try:
        return PretrainedConfig.get_config_dict(name_or_path)[0]
    except OSError as error:
        raise TrainingConfigurationError(
            f"{flag} {name_or_path}: cannot read a config ({str(error).splitlines()[0]})."
        ) from None


def load_pretraining_models(
    model_name_or_path: str, model_args: ModelArguments, relation_vocab: list[str]
) -> tuple[KnowledgeCLIPModel, CLIPModel | None, KnowledgeCLIPProcessor]:
    """
    The student, the frozen KD teacher and the processor of a pre-training run.

    A CLIP checkpoint is continued with fresh knowledge modules over `relation_vocab`. A Knowledge-CLIP checkpoint
    keeps training: its relation vocabulary must cover `relation_vocab`, and its fusion encoder keeps its sizes. Dropout
    rates (`drop_path_rate`, `disable_dropout`) and loss weights apply to either: they change no weight's shape.

    The teacher is `model_args.teacher_name_or_path` when set (`load_teacher`), otherwise the CLIP part of
    `model_name_or_path` as loaded: the original CLIP when continuing a CLIP checkpoint, the checkpoint's own towers
    when continuing a Knowledge-CLIP one.

    Args:
        model_name_or_path (`str`): A CLIP or Knowledge-CLIP checkpoint (Hub id or directory).
        model_args (`ModelArguments`): The fusion encoder's sizes, dropout, loss weights and teacher.
        relation_vocab (`list[str]`): The relations of the training data (the E2R classes).

    Returns:
        `tuple`: the `KnowledgeCLIPModel` (training mode is left to the caller), the teacher (`CLIPModel` in eval mode
        without gradient, or `None` when `kd_loss_weight` is 0) and the `KnowledgeCLIPProcessor`.

    Raises:
        TrainingConfigurationError: with a one-line message for an unreadable checkpoint, one of another model type, a
            Knowledge-CLIP checkpoint lacking relations of the data or given new fusion sizes, or a teacher that
            cannot read the student's inputs.
    """
    flag = "--model_name_or_path"
    config_dict = read_config(model_name_or_path, flag)
    model_type = config_dict.get("model_type")
    fusion_sizes = model_args.fusion_size_overrides()
    fusion = fusion_sizes | model_args.fusion_dropout_overrides()
    overrides = model_args.config_overrides()
    if model_type == "clip":
        if model_args.disable_dropout:
            # from_clip takes a sub-config given as a dict for the whole sub-config, so the towers' full configs go in.
            clip_config = CLIPConfig.from_pretrained(model_name_or_path)
            overrides |= {
                name: getattr(clip_config, name).to_dict() | {"attention_dropout": 0.0} for name in TOWER_CONFIGS
            }
        # from_pretrained reports every knowledge weight as MISSING at WARNING level: expected here, they are new.
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        model = KnowledgeCLIPModel.from_clip(
            model_name_or_path, relation_vocab=relation_vocab, fusion_encoder_config=fusion, **overrides
        )
        transformers_logging.set_verbosity(verbosity)
        clip_processor = CLIPProcessor.from_pretrained(model_name_or_path)
        processor = KnowledgeCLIPProcessor(
            clip_processor.image_processor, clip_processor.tokenizer, relation_vocab=relation_vocab
        )
    elif model_type == "knowledge_clip":
        missing = [r for r in relation_vocab if r not in config_dict.get("relation_vocab", [])]
        if missing:
            raise TrainingConfigurationError(
                f"{flag} {model_name_or_path}: its relation vocabulary lacks {len(missing)} relation(s) of the data "
                f"({missing[:5]}); continue from its CLIP export (save_clip_pretrained) to start a new vocabulary."
            )
        if fusion_sizes:
            raise TrainingConfigurationError(
                f"{flag} {model_name_or_path}: a Knowledge-CLIP checkpoint keeps its fusion encoder sizes "
                f"({', '.join(fusion_sizes)} cannot change)."
            )
        # from_pretrained merges a sub-config given as a dict into the checkpoint's.
        if fusion:
            overrides["fusion_encoder_config"] = fusion
        if model_args.disable_dropout:
            overrides |= {name: {"attention_dropout": 0.0} for name in TOWER_CONFIGS}
        model = KnowledgeCLIPModel.from_pretrained(model_name_or_path, **overrides)
        processor = KnowledgeCLIPProcessor.from_pretrained(model_name_or_path)
    else:
        raise TrainingConfigurationError(
            f"{flag} {model_name_or_path}: expected a CLIP or Knowledge-CLIP checkpoint, got {model_type!r}."
        )

    if model.config.kd_loss_weight == 0:
        return model, None, processor
    if model_args.teacher_name_or_path is not None:
        teacher = load_teacher(model_args.teacher_name_or_path)
        _check_teacher_reads_student_inputs(teacher, model, model_args.teacher_name_or_path)
    elif model_type == "clip":
        teacher = CLIPModel.from_pretrained(model_name_or_path)
    else:
        teacher = model.to_clip()
    return model, teacher.eval().requires_grad_(False), processor


def load_teacher(name_or_path: str) -> CLIPModel:
    """
    A KD teacher: a CLIP checkpoint as is, or the CLIP part (`to_clip`) of a Knowledge-CLIP checkpoint.

    Args:
        name_or_path (`str`): Hub id or directory.

    Returns:
        `CLIPModel`: in eval mode, without gradient.

    Raises:
        TrainingConfigurationError: for an unreadable checkpoint or one of another model type.
    """
    flag = "--teacher_name_or_path"
    model_type = read_config(name_or_path, flag).get("model_type")
    if model_type == "clip":
        teacher = CLIPModel.from_pretrained(name_or_path)
    elif model_type == "knowledge_clip":
        teacher = KnowledgeCLIPModel.from_pretrained(name_or_path).to_clip()
    else:
        raise TrainingConfigurationError(
            f"{flag} {name_or_path}: expected a CLIP or Knowledge-CLIP checkpoint, got {model_type!r}."
        )
    return teacher.eval().requires_grad_(False)


def _check_teacher_reads_student_inputs(teacher: CLIPModel, model: KnowledgeCLIPModel, name_or_path: str) -> None:
    """
    The teacher embeds the student's token ids and pixel values: it must share the student's tokenizer (a different
    vocabulary size is the sign of one that does not) and image size (pre-training does not interpolate position
    encodings). Either mismatch would otherwise fail deep inside the teacher's embeddings, or silently read garbage.
    """
    mismatches = [
        f"{tower}.{name} {getattr(getattr(teacher.config, tower), name)} vs the student's "
        f"{getattr(getattr(model.config, tower), name)}"
        for tower, name in (("text_config", "vocab_size"), ("vision_config", "image_size"))
        if getattr(getattr(teacher.config, tower), name) != getattr(getattr(model.config, tower), name)
    ]
    if mismatches:
        raise TrainingConfigurationError(
            f"--teacher_name_or_path {name_or_path}: cannot read the student's inputs ({'; '.join(mismatches)})."
        )
