# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Bad invocations of `examples/pretrain.py` raise `TrainingConfigurationError`, which the script turns into a one-line
error, not a traceback."""

import pytest
from training_utils import load_example, run_pretrain

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.training import TrainingConfigurationError


@pytest.fixture(scope="module")
def pretrain():
    return load_example("pretrain")


def assert_one_line_error(result, expected: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert expected in last_line, last_line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--dataset", "wikidata:/data/wd.json"], "unknown kind 'wikidata'"),
        (["--dataset", "conceptnet"], "missing path"),
        (["--dataset", "conceptnet:/does/not/exist.csv.gz"], "path not found"),
        (["--config", "/does/not/exist.yaml"], "config file not found"),
        (["--mixed_precision", "fp8"], "--mixed_precision must be no, bf16 or fp16"),
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        (["--resume_from_checkpoint", "/does/not/exist"], "no such directory"),
        (["--model_name_or_path", "some/unknown-clip"], "Cannot tell the license of base model"),
        (["--report_to", "wandb"], "--report_to: unknown tracker(s) ['wandb']"),
    ],
)
def test_bad_arguments_exit_before_any_work(pretrain, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingConfigurationError) as error_info:
        pretrain.main(args)
    message = str(error_info.value)
    assert expected in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # nothing was built or written


def test_unknown_yaml_key(pretrain, tmp_path):
    (tmp_path / "bad.yaml").write_text("learning_rate: 1.0e-5\nlerning_rate: 2.0e-5\n")
    with pytest.raises(TrainingConfigurationError, match=r"unknown keys \['lerning_rate'\]"):
        pretrain.main([str(tmp_path / "bad.yaml")])


def test_the_script_prints_only_the_message(tmp_path):
    assert_one_line_error(run_pretrain(["--dataset", "wikidata:/x"], cwd=tmp_path), "unknown kind 'wikidata'")


@pytest.mark.slow
def test_relation_vocabulary_mismatch_with_a_checkpoint(tmp_path):
    from tiny import tiny_config, tiny_processor

    checkpoint = tmp_path / "knowledge-checkpoint"
    KnowledgeCLIPModel(tiny_config(relation_vocab=["is a"])).save_pretrained(checkpoint)
    processor = tiny_processor()
    KnowledgeCLIPProcessor(processor.image_processor, processor.tokenizer, ["is a"]).save_pretrained(checkpoint)
    args = ["--model_name_or_path", str(checkpoint), "--demo_size", "tiny", "--license", "mit"]
    assert_one_line_error(run_pretrain(args, cwd=tmp_path), "its relation vocabulary lacks")
    missing = ["--model_name_or_path", str(tmp_path / "missing"), "--demo_size", "tiny", "--license", "mit"]
    assert_one_line_error(run_pretrain(missing, cwd=tmp_path), f"--model_name_or_path {tmp_path / 'missing'}")
