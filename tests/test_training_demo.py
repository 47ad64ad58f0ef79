# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The demo recipe end to end (`accelerate launch examples/pretrain.py`, tiny sizes) and the argument parsing."""

import dataclasses
import json

import pytest
import yaml
from training_utils import REPO, TINY_ARGS, load_example, run_pretrain

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.training import TrainingConfigurationError
from knowledge_clip.training.arguments import ModelArguments, parse_arguments
from knowledge_clip.training.datasets import DatasetSpec, parse_dataset_spec
from knowledge_clip.training.optim import parameter_groups


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    tiny_args = [arg for arg in TINY_ARGS if arg != "--no_benchmark_demo_world"]
    args = [*tiny_args, "--max_steps", "6", "--logging_steps", "2", "--eval_steps", "3", "--checkpointing_steps", "3"]
    args += ["--report_to", "tensorboard"]
    result = run_pretrain(args, cwd=tmp_path, launcher="accelerate")
    assert result.returncode == 0, result.stderr[-3000:]
    output = tmp_path / "knowledge-clip-demo"  # the demo's default output directory, next to demo_world/

    assert (tmp_path / "demo_world" / "demo_world.json").is_file()
    assert (tmp_path / "stage0_clip" / "stage0.json").is_file()
    for name in ("model.safetensors", "config.json", "processor_config.json", "tokenizer.json", "README.md"):
        assert (output / name).is_file(), name
    assert (output / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((output / "logs").rglob("events.out.tfevents.*"))
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-6"]

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["global_step"] == 6
    assert [record["step"] for record in metrics["train_history"]] == [2, 4, 6]
    for record in metrics["train_history"]:
        for name in ("loss", "e2e_loss", "e2r_loss", "kd_loss"):
            assert record[name] == pytest.approx(record[name]) and record[name] >= 0  # finite, not NaN
    assert set(metrics["final_evaluation"]) >= {"eval/loss", "eval/e2e_loss", "eval/e2r_loss", "eval/kd_loss"}
    assert "step 6/6" in result.stderr and "samples/s" in result.stderr
    benchmark = metrics["benchmarks"]["demo_world"]
    for name in ("original_clip", "knowledge_clip"):
        assert 0 <= benchmark[name]["zero_shot/top1_accuracy"] <= 1
    assert "link_prediction/conceptnet/both/mrr" in benchmark["knowledge_clip"]

    model = KnowledgeCLIPModel.from_pretrained(output)
    processor = KnowledgeCLIPProcessor.from_pretrained(output)
    assert model.config.relation_vocab == processor.relation_vocab
    assert {"image of", "caption of", "left of", "is a"} <= set(model.config.relation_vocab)

    card = (output / "README.md").read_text()
    assert "license: apache-2.0" in card and "model-index" in card and "Zero-Shot Image Classification" in card

    # Stage 0 is cached: a second run reuses it instead of training it again. That run also goes through the memory
    # and precision knobs: activation checkpointing, gradient accumulation and bf16 autocast.
    knobs = ["--activation_checkpointing", "--gradient_accumulation_steps", "2", "--mixed_precision", "bf16"]
    second = run_pretrain(
        [*args[:-2], *knobs, "--max_steps", "2", "--logging_steps", "1", "--no_benchmark_demo_world", "--output_dir",
         "again"], cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Reusing the stage-0 CLIP" in second.stderr
    assert "2 steps of 12 triplets (6 per process x 1 processes x 2 accumulation)" in second.stderr
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["global_step"] == 2


def test_demo_yaml_matches_embedded_defaults():
    pretrain = load_example("pretrain")
    config = yaml.safe_load((REPO / "examples" / "configs" / "demo.yaml").read_text())
    assert config.pop("dataset") == ["demo:demo_world"]
    assert config.pop("demo_size") == "default"
    assert config == pretrain.DEMO_DEFAULTS


def test_yaml_then_command_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model_name_or_path: some/clip\nlearning_rate: 2.0e-5\nmax_steps: 7\n"
        "dataset:\n  - conceptnet:/a.csv\n  - visualsem:/b\n"
    )
    model_args, data_args, _, args = parse_arguments([str(config), "--max_steps", "9"], demo_defaults={"max_steps": 1})
    assert model_args.model_name_or_path == "some/clip"
    assert (args.learning_rate, args.max_steps) == (2e-5, 9)  # the flag wins; no demo defaults with a model
    assert data_args.dataset == ["conceptnet:/a.csv", "visualsem:/b"]
    _, data_args, _, _ = parse_arguments(["--config", str(config), "--dataset", "image_text:/c", "--dataset", "x:/d"])
    assert data_args.dataset == ["image_text:/c", "x:/d"]  # flags replace the file's list
    _, _, _, args = parse_arguments([], demo_defaults={"max_steps": 3})
    assert args.max_steps == 3


def test_parse_arguments_with_a_scripts_own_dataclasses(tmp_path):
    """What a fine-tuning script does: its own dataclasses, the same YAML and list-flag rules."""

    @dataclasses.dataclass
    class FinetuningArguments:
        task: str = "vqa"
        splits: list[str] = dataclasses.field(default_factory=list, metadata={"action": "extend"})
        learning_rate: float = 1e-4

    config = tmp_path / "finetune.yaml"
    config.write_text("model_name_or_path: some/knowledge-clip\ntask: nlvr2\nsplits: [train, dev]\n")
    model_args, finetuning_args = parse_arguments(
        [str(config), "--learning_rate", "3e-5"], dataclass_types=(ModelArguments, FinetuningArguments)
    )
    assert model_args.model_name_or_path == "some/knowledge-clip"
    assert (finetuning_args.task, finetuning_args.splits, finetuning_args.learning_rate) == (
        "nlvr2",
        ["train", "dev"],
        3e-5,
    )
    _, finetuning_args = parse_arguments(
        ["--config", str(config), "--splits", "test"], dataclass_types=(ModelArguments, FinetuningArguments)
    )
    assert finetuning_args.splits == ["test"]  # flags replace the file's list
    config.write_text("max_steps: 3\n")  # a pretraining key this script does not have
    with pytest.raises(TrainingConfigurationError, match=r"unknown keys \['max_steps'\]"):
        parse_arguments([str(config)], dataclass_types=(ModelArguments, FinetuningArguments))


def test_dataset_specs(tmp_path):
    for name in ("cn.csv.gz", "x:y.json"):
        (tmp_path / name).touch()
    (tmp_path / "vg").mkdir()
    assert parse_dataset_spec(f"conceptnet:{tmp_path}/cn.csv.gz:0.3") == DatasetSpec(
        "conceptnet", f"{tmp_path}/cn.csv.gz", 0.3
    )
    assert parse_dataset_spec(f"visual_genome:{tmp_path}/vg") == DatasetSpec("visual_genome", f"{tmp_path}/vg")
    assert parse_dataset_spec(f"image_text:{tmp_path}/x:y.json") == DatasetSpec("image_text", f"{tmp_path}/x:y.json")
    assert parse_dataset_spec("demo:not/built/yet:2") == DatasetSpec("demo", "not/built/yet", 2.0)
    bad_specs = (
        ("wikidata:/x", "unknown kind"),
        ("conceptnet", "missing path"),
        ("conceptnet:", "missing"),
        (f"conceptnet:{tmp_path}/absent.csv", "path not found"),
        (f"conceptnet:{tmp_path}/cn.csv.gz:-1", "weight must be a number >= 0"),
    )
    for bad, message in bad_specs:
        with pytest.raises(TrainingConfigurationError, match=message):
            parse_dataset_spec(bad)


def test_parameter_groups():
    from tiny import tiny_config

    model = KnowledgeCLIPModel(tiny_config())
    groups = {group["name"]: group for group in parameter_groups(model, 1e-5, 1e-3, 0.1)}
    assert set(groups) == {"towers/decay", "towers/no_decay", "new_modules/decay", "new_modules/no_decay"}
    names = {id(p): n for n, p in model.named_parameters()}

    def members(group):
        return {names[id(p)] for p in groups[group]["params"]}

    assert "logit_scale" in members("towers/no_decay")
    assert "text_model.embeddings.token_embedding.weight" in members("towers/no_decay")
    assert "text_model.encoder.layers.0.self_attn.q_proj.bias" in members("towers/no_decay")
    assert "text_model.encoder.layers.0.self_attn.q_proj.weight" in members("towers/decay")
    assert all(n.startswith(("fusion_encoder.", "relation_head.", "graph_head.", "text_to_fusion.", "vision_to_fusion."))
               for n in members("new_modules/decay") | members("new_modules/no_decay"))  # fmt: skip
    # Exactly the vectors, logit_scale and the nn.Embedding tables go without decay; the patch embedding (a
    # convolution) is decayed like every other weight matrix.
    assert members("towers/no_decay") | members("new_modules/no_decay") == {
        n for n, p in model.named_parameters() if p.ndim < 2 or n.endswith(("_embedding.weight", "logit_scale"))
    } - {"vision_model.embeddings.patch_embedding.weight"}
    assert "vision_model.embeddings.patch_embedding.weight" in members("towers/decay")
    assert "vision_model.embeddings.position_embedding.weight" in members("towers/no_decay")
    assert "fusion_encoder.embeddings.head_role_embedding.weight" in members("new_modules/no_decay")
    assert groups["new_modules/decay"]["lr"] == 1e-3 and groups["towers/decay"]["lr"] == 1e-5
    assert groups["towers/no_decay"]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
