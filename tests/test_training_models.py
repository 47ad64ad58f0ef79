# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The student and teacher of a pre-training run (`load_pretraining_models`): dropout changes on a checkpoint, the KD
teacher of `--teacher_name_or_path`, and both through `examples/pretrain.py` continuing a Knowledge-CLIP checkpoint.
"""

import json

import pytest
import torch
from tiny import RELATIONS, tiny_config, tiny_processor, tiny_tokenizer
from training_utils import run_pretrain
from transformers import CLIPModel

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.training import (
    DatasetSpec,
    ModelArguments,
    TrainingConfigurationError,
    load_mixture,
    load_pretraining_models,
)

TINY_FUSION = {"fusion_hidden_size": 24, "fusion_num_heads": 4, "fusion_intermediate_size": 48}


def dropout_config(tokenizer, tower_dropout: float, relation_vocab=RELATIONS):
    """The tiny config with attention dropout `tower_dropout` in both towers and 0.1 everywhere in the fusion encoder."""
    config = tiny_config(tokenizer, relation_vocab=list(relation_vocab))
    config.text_config.attention_dropout = config.vision_config.attention_dropout = tower_dropout
    config.fusion_encoder_config.attention_dropout = config.fusion_encoder_config.drop_path_rate = 0.1
    return config


def save_knowledge_checkpoint(path, config, tokenizer, seed: int) -> KnowledgeCLIPModel:
    torch.manual_seed(seed)
    model = KnowledgeCLIPModel(config)
    model.save_pretrained(path)
    image_processor = tiny_processor(tokenizer).image_processor
    KnowledgeCLIPProcessor(image_processor, tokenizer, relation_vocab=config.relation_vocab).save_pretrained(path)
    return model


def dropout_rates(model: KnowledgeCLIPModel) -> dict:
    """The rates the modules use (set at construction from the config)."""
    return {
        "text": {layer.self_attn.dropout for layer in model.text_model.encoder.layers},
        "vision": {layer.self_attn.dropout for layer in model.vision_model.encoder.layers},
        "fusion_attention": {layer.self_attn.dropout for layer in model.fusion_encoder.layers},
        # The layers' rates come from a float32 linspace.
        "fusion_last_drop_path": round(model.fusion_encoder.layers[-1].drop_path.drop_prob, 6),
    }


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    a_weights, b_weights = a.state_dict(), b.state_dict()
    return a_weights.keys() == b_weights.keys() and all(torch.equal(a_weights[k], b_weights[k]) for k in a_weights)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A Knowledge-CLIP checkpoint with dropout everywhere, its CLIP export, and two unrelated checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = tiny_tokenizer()
    knowledge = save_knowledge_checkpoint(root / "knowledge", dropout_config(tokenizer, 0.1), tokenizer, seed=0)
    knowledge.save_clip_pretrained(root / "clip", tiny_processor(tokenizer))
    other = save_knowledge_checkpoint(root / "other_knowledge", dropout_config(tokenizer, 0.1), tokenizer, seed=1)
    other.save_clip_pretrained(root / "other_clip", tiny_processor(tokenizer))
    foreign = other.config.to_clip_config()
    foreign.text_config.vocab_size += 1  # another tokenizer
    CLIPModel(foreign).save_pretrained(root / "foreign_clip")
    return root, knowledge, other


def test_dropout_changes_on_a_knowledge_clip_checkpoint(checkpoints):
    root, knowledge, _ = checkpoints
    model, _, _ = load_pretraining_models(str(root / "knowledge"), ModelArguments(drop_path_rate=0.05), RELATIONS)
    assert model.config.fusion_encoder_config.drop_path_rate == 0.05
    assert dropout_rates(model) == {
        "text": {0.1},
        "vision": {0.1},
        "fusion_attention": {0.1},
        "fusion_last_drop_path": 0.05,
    }
    assert model.config.fusion_encoder_config.hidden_size == 24 and same_weights(model, knowledge)

    model, _, _ = load_pretraining_models(str(root / "knowledge"), ModelArguments(disable_dropout=True), RELATIONS)
    assert dropout_rates(model) == {
        "text": {0.0},
        "vision": {0.0},
        "fusion_attention": {0.0},
        "fusion_last_drop_path": 0.0,
    }
    config = model.config
    assert config.text_config.attention_dropout == config.vision_config.attention_dropout == 0.0
    assert config.fusion_encoder_config.attention_dropout == config.fusion_encoder_config.drop_path_rate == 0.0
    assert config.text_config.hidden_size == 32 and same_weights(model, knowledge)

    with pytest.raises(TrainingConfigurationError, match=r"keeps its fusion encoder sizes \(hidden_size cannot"):
        load_pretraining_models(str(root / "knowledge"), ModelArguments(fusion_hidden_size=64), RELATIONS)


def test_disable_dropout_reaches_the_towers_of_a_clip_checkpoint(checkpoints):
    root, knowledge, _ = checkpoints
    model_args = ModelArguments(disable_dropout=True, **TINY_FUSION)
    model, teacher, _ = load_pretraining_models(str(root / "clip"), model_args, RELATIONS)
    assert dropout_rates(model) == {
        "text": {0.0},
        "vision": {0.0},
        "fusion_attention": {0.0},
        "fusion_last_drop_path": 0.0,
    }
    # Only the rates changed: the towers keep their sizes and the CLIP's weights.
    assert model.config.text_config.hidden_size == 32 and model.config.vision_config.image_size == 32
    assert same_weights(model.to_clip(), knowledge.to_clip()) and same_weights(teacher, knowledge.to_clip())


def test_the_kd_teacher(checkpoints):
    root, knowledge, other = checkpoints
    path = str(root / "knowledge")

    # By default, continuing a Knowledge-CLIP checkpoint distils from its own towers.
    _, teacher, _ = load_pretraining_models(path, ModelArguments(), RELATIONS)
    assert same_weights(teacher, knowledge.to_clip())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())

    # --teacher_name_or_path: a CLIP checkpoint as is, or the CLIP part of a Knowledge-CLIP one.
    for teacher_path in ("other_clip", "other_knowledge"):
        model, teacher, _ = load_pretraining_models(path, ModelArguments(teacher_name_or_path=str(root / teacher_path)), RELATIONS)  # fmt: skip
        assert same_weights(teacher, other.to_clip()), teacher_path
        assert same_weights(model, knowledge)  # the student is still the checkpoint
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())

    # No KD, no teacher.
    no_kd = ModelArguments(kd_loss_weight=0, teacher_name_or_path=str(root / "other_clip"))
    assert load_pretraining_models(path, no_kd, RELATIONS)[1] is None

    with pytest.raises(
        TrainingConfigurationError, match=r"--teacher_name_or_path .*vocab_size 301 vs the student's 300"
    ):
        load_pretraining_models(path, ModelArguments(teacher_name_or_path=str(root / "foreign_clip")), RELATIONS)
    with pytest.raises(TrainingConfigurationError, match=r"--teacher_name_or_path .*missing: cannot read a config"):
        load_pretraining_models(path, ModelArguments(teacher_name_or_path=str(root / "missing")), RELATIONS)


@pytest.mark.slow
def test_continuing_a_knowledge_clip_checkpoint_with_new_dropout_and_teacher(tmp_path):
    """Through the script: `--drop_path_rate` and `--disable_dropout` on a Knowledge-CLIP checkpoint, and
    `--teacher_name_or_path`. The first logged KD loss is that of the unchanged weights: 0 against the checkpoint's
    own towers (no tower dropout), not 0 against another CLIP."""
    tokenizer = tiny_tokenizer()
    world = build_demo_world(tmp_path / "world", seed=0, size="tiny").root
    vocab = load_mixture([DatasetSpec("demo", str(world))], 0.05, seed=42, demo_size="tiny").relation_vocab
    save_knowledge_checkpoint(tmp_path / "knowledge", dropout_config(tokenizer, 0.0, vocab), tokenizer, seed=0)
    other = save_knowledge_checkpoint(tmp_path / "other", dropout_config(tokenizer, 0.0, vocab), tokenizer, seed=1)
    other.save_clip_pretrained(tmp_path / "original_clip", tiny_processor(tokenizer))
    common = ["--model_name_or_path", str(tmp_path / "knowledge"), "--dataset", f"demo:{world}", "--demo_size", "tiny",
              "--license", "mit", "--max_steps", "1", "--logging_steps", "1", "--per_device_train_batch_size", "6",
              "--per_device_eval_batch_size", "8", "--max_eval_batches", "1", "--report_to", "none",
              "--no_benchmark_demo_world"]  # fmt: skip

    def run(output_dir: str, *flags: str) -> tuple[dict, dict, str]:
        result = run_pretrain([*common, "--output_dir", output_dir, *flags], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        config = json.loads((tmp_path / output_dir / "config.json").read_text())
        first_record = json.loads((tmp_path / output_dir / "metrics.json").read_text())["train_history"][0]
        return config, first_record, result.stderr

    config, record, stderr = run("drop_path", "--drop_path_rate", "0.05")
    assert config["fusion_encoder_config"]["drop_path_rate"] == 0.05
    assert config["fusion_encoder_config"]["attention_dropout"] == 0.1  # kept
    assert record["kd_loss"] < 1e-6
    assert f"KD teacher: the CLIP part of {tmp_path / 'knowledge'}" in stderr

    config, record, stderr = run("new_teacher", "--disable_dropout", "--teacher_name_or_path", str(tmp_path / "original_clip"))  # fmt: skip
    fusion = config["fusion_encoder_config"]
    assert fusion["drop_path_rate"] == fusion["attention_dropout"] == 0.0
    assert config["text_config"]["attention_dropout"] == config["vision_config"]["attention_dropout"] == 0.0
    assert record["kd_loss"] > 1e-3
    assert f"KD teacher: the CLIP part of {tmp_path / 'original_clip'}" in stderr
