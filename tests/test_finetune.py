# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
`examples/finetune.py` end to end on tiny files in the published formats (VQAv2, SNLI-VE, NLVR2, Karpathy split) and
a tiny Knowledge-CLIP checkpoint: every task trains, evaluates and saves; two processes equal one on the same global
batch; a run killed with SIGKILL and resumed equals the uninterrupted one; bad inputs fail with one line. Plus the
task glue of `knowledge_clip.training.finetuning` in process.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
import torch
import torch.nn.functional as F
from tiny import solid_image, tiny_config
from training_utils import (
    ACCELERATE,
    REPO,
    TINY_FINETUNE_ARGS,
    environment,
    free_port,
    load_example,
    max_weight_difference,
)

from knowledge_clip import (
    KnowledgeCLIPForImageTextClassification,
    KnowledgeCLIPForQuestionAnswering,
    KnowledgeCLIPModel,
    KnowledgeCLIPProcessor,
)
from knowledge_clip.data.images import open_image
from knowledge_clip.evaluation import reranked_retrieval_ranks
from knowledge_clip.training import TrainingConfigurationError
from knowledge_clip.training.arguments import ModelArguments
from knowledge_clip.training.finetuning import (
    FinetuningArguments,
    FinetuningHistory,
    RetrievalReranking,
    TaskCollator,
    TaskDataset,
    TaskRecord,
    _fusion_retrieval_embeddings,
    count_truncated_texts,
    evaluate_task,
    evaluation_dataloaders,
    finetuned_model_card,
    finetuning_parameter_groups,
    load_finetuning_model,
    load_task_data,
    load_test_subsets,
    push_finetuned_model,
)

FINETUNE = REPO / "examples" / "finetune.py"
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (220, 220, 30)}
ANSWERS = ["red", "blue", "green", "yellow", "yes", "no"]
LONG_TEXT = " ".join(["a red circle left of a blue square"] * 6)  # > 32 tokens: truncated
SNLI_VE = ["entailment", "neutral", "contradiction"]
# Small steps, every task: logging each step, evaluation at 3 and at the end (step 6).
COMMON = ["--max_steps", "6", "--eval_steps", "3", "--logging_steps", "1", *TINY_FINETUNE_ARGS, "--learning_rate", "1e-4",
          "--new_modules_learning_rate", "1e-3", "--license", "apache-2.0", "--warmup_steps", "1"]  # fmt: skip


# ------------------------------------------------------------------------------------------------------- fixtures
def _save_images(folder, names, suffix):
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        solid_image(list(COLOURS.values())[index % len(COLOURS)]).save(folder / f"{name}{suffix}")


def write_vqa(root, subtype, num_images, questions_per_image, seed):
    rng = np.random.default_rng(seed)
    images = root / subtype
    _save_images(images, [f"COCO_{subtype}_{i:012d}" for i in range(1, num_images + 1)], ".jpg")
    questions, annotations = [], []
    for image_id in range(1, num_images + 1):
        for q in range(questions_per_image):
            question_id = image_id * 10 + q
            text = LONG_TEXT if question_id == 11 else f"what colour is shape {q}?"
            answers = [ANSWERS[i] for i in rng.integers(0, len(ANSWERS), 10)]
            questions.append({"image_id": image_id, "question": text, "question_id": question_id})
            annotations.append(
                {
                    "question_type": "what color is the",
                    "multiple_choice_answer": answers[0],
                    "answers": [
                        {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)
                    ],
                    "image_id": image_id,
                    "answer_type": "yes/no" if answers[0] in ("yes", "no") else "other",
                    "question_id": question_id,
                }
            )
    header = {"info": {}, "license": {}, "data_type": "mscoco", "data_subtype": subtype}
    (root / f"{subtype}_questions.json").write_text(
        json.dumps({**header, "task_type": "Open-Ended", "questions": questions})
    )
    (root / f"{subtype}_annotations.json").write_text(json.dumps({**header, "annotations": annotations}))


def write_snli_ve(root, name, count, seed):
    rng = np.random.default_rng(seed)
    _save_images(root / "flickr30k-images", [str(1000 + i) for i in range(6)], ".jpg")
    with open(root / f"snli_ve_{name}.jsonl", "w") as file:
        for i in range(count):
            label = SNLI_VE[int(rng.integers(0, 3))]
            text = LONG_TEXT if i == 0 else f"a {label} statement {i}"
            record = {"Flikr30kID": f"{1000 + i % 6}.jpg", "sentence1": "a caption", "pairID": f"{name}{i}",
                      "sentence2": text, "gold_label": label}  # fmt: skip
            file.write(json.dumps(record) + "\n")


def write_nlvr2(root, split, count, seed):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        stem = f"{split}-{i}-0"
        folder = root / "images" / split / (str(i % 2) if split == "train" else "")
        _save_images(folder, [f"{stem}-img0", f"{stem}-img1"], ".png")
        record = {"identifier": f"{stem}-{i % 3}", "sentence": f"the left image has {i % 3} dogs",
                  "label": "True" if rng.random() < 0.5 else "False", "synset": "dog", "query": "dogs"}  # fmt: skip
        if split == "train":
            record["directory"] = i % 2
        lines.append(json.dumps(record))
    (root / f"{split}.json").write_text("\n".join(lines) + "\n")


def write_karpathy(root):
    images = []
    for index in range(12):
        split = "train" if index < 8 else "val"
        # Captions in the tiny tokenizer's words, different for every image: indistinguishable captions would tie
        # exactly, and rounding would break the ties differently from run to run.
        colour, shape = list(COLOURS)[index % 4], ("circle", "square", "triangle")[index % 3]
        texts = (f"a {colour} {shape}", f"a photo of a {('small', 'big')[index % 2]} {colour} {shape}")
        sentences = [{"raw": text, "tokens": text.split(), "imgid": index, "sentid": 2 * index + k}
                     for k, text in enumerate(texts)]  # fmt: skip
        images.append({"filepath": "val2014", "filename": f"COCO_val2014_{index:012d}.jpg", "imgid": index,
                       "split": split, "sentences": sentences, "cocoid": index})  # fmt: skip
    _save_images(root / "val2014", [f"COCO_val2014_{i:012d}" for i in range(12)], ".jpg")
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tokenizer, processor):
    root = tmp_path_factory.mktemp("finetune")
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(tiny_config(tokenizer))
    model.save_pretrained(root / "knowledge")
    processor.save_pretrained(root / "knowledge")
    model.save_clip_pretrained(root / "clip", processor)
    write_vqa(root / "vqa", "train2014", 6, 4, seed=1)
    write_vqa(root / "vqa", "val2014", 3, 4, seed=2)
    write_snli_ve(root / "snli_ve", "train", 24, seed=3)
    write_snli_ve(root / "snli_ve", "dev", 12, seed=4)
    write_nlvr2(root / "nlvr2", "train", 16, seed=5)
    write_nlvr2(root / "nlvr2", "dev", 8, seed=6)
    write_karpathy(root / "karpathy")
    return root


def task_args(root, task):
    if task == "vqa":
        v = root / "vqa"
        return ["--task", "vqa", "--train_file", v / "train2014_questions.json", "--annotations_file",
                v / "train2014_annotations.json", "--image_dir", v / "train2014", "--validation_file",
                v / "val2014_questions.json", "--validation_annotations_file", v / "val2014_annotations.json",
                "--validation_image_dir", v / "val2014", "--answer_vocab_size", "5"]  # fmt: skip
    if task == "snli_ve":
        s = root / "snli_ve"
        return ["--task", "snli_ve", "--train_file", s / "snli_ve_train.jsonl", "--validation_file",
                s / "snli_ve_dev.jsonl", "--image_dir", s / "flickr30k-images"]  # fmt: skip
    if task == "nlvr2":
        n = root / "nlvr2"
        return ["--task", "nlvr2", "--train_file", n / "train.json", "--image_dir", n / "images" / "train",
                "--validation_file", n / "dev.json", "--validation_image_dir", n / "images" / "dev"]  # fmt: skip
    k = root / "karpathy"
    return ["--task", "retrieval", "--train_file", k / "dataset_coco.json", "--validation_file",
            k / "dataset_coco.json", "--image_dir", k]  # fmt: skip


def run_finetune(args, processes=0, **env):
    """`python examples/finetune.py` (processes=0) or `accelerate launch` with 1 or 2 (CPU) processes."""
    args = [str(arg) for arg in args]
    if processes == 0:
        command = [sys.executable, str(FINETUNE), *args]
    else:
        multi = ["--multi_gpu", "--main_process_port", str(free_port())] if processes > 1 else []
        command = [str(ACCELERATE), "launch", *multi, "--num_processes", str(processes), "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", str(FINETUNE), *args]  # fmt: skip
    extra = {"ACCELERATE_USE_CPU": "1"} if processes > 1 else {}
    # A run that hangs (a rare one of the two-process run did, twice, in full suites) is aborted, launcher and workers
    # (torch's launcher starts them in sessions of their own), and their faulthandler stacks are the failure message.
    process = subprocess.Popen(
        command,
        env=environment(**extra, **env, PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        stdout, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for member in reversed(tree):  # workers first, so that they print before the launcher reacts
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGABRT)
        psutil.wait_procs(tree, timeout=30)
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"timed out after 180 s: {' '.join(command)}\nstacks:\n{stderr[-20000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def eval_records(metrics):
    return [{k: v for k, v in record.items()} for record in metrics["eval_history"]]


@pytest.fixture(scope="module")
def runs(workspace):
    """One run per task, launched once: VQA with checkpoints (the reference of the resume test) and a test split with
    a subset, SNLI-VE through `accelerate launch` with accumulation, activation checkpointing and bf16, NLVR2 from the
    plain CLIP checkpoint, retrieval with 8 examples per process (the reference of the two-process run) and a test
    split. The test files are the validation files: the test metrics must then be those of the best evaluation."""
    v = workspace / "vqa"
    (workspace / "vqa_subsets.json").write_text(json.dumps({"first_image": [10, 11, 12, 13]}))
    vqa_test = ["--test_file", v / "val2014_questions.json", "--test_annotations_file", v / "val2014_annotations.json",
                "--test_image_dir", v / "val2014", "--test_subsets_file", workspace / "vqa_subsets.json"]  # fmt: skip
    retrieval_test = ["--test_file", workspace / "karpathy" / "dataset_coco.json", "--test_split", "val"]
    results = {}
    for task, source, extra, processes in (
        ("vqa", "knowledge", ["--checkpointing_steps", "2", "--max_steps", "8", "--eval_steps", "4", *vqa_test], 0),
        # The memory and precision knobs, under `accelerate launch`.
        (
            "snli_ve",
            "knowledge",
            ["--gradient_accumulation_steps", "2", "--activation_checkpointing", "--mixed_precision", "bf16"],
            1,
        ),  # fmt: skip
        (
            "nlvr2",
            "clip",
            [
                "--fusion_hidden_size",
                "24",
                "--fusion_num_heads",
                "4",
                "--fusion_intermediate_size",
                "48",
                "--fusion_num_layers",
                "2",
            ],
            0,
        ),  # fmt: skip
        (
            "retrieval",
            "knowledge",
            ["--per_device_train_batch_size", "8", "--disable_dropout", "--rerank_top_k", "3", *retrieval_test],
            0,
        ),
    ):
        output = workspace / "runs" / task
        args = [*COMMON, *task_args(workspace, task), "--model_name_or_path", workspace / source, *extra]
        result = run_finetune([*args, "--output_dir", output], processes)
        assert result.returncode == 0, f"{task}:\n{result.stderr[-4000:]}"
        results[task] = (args, output, result)
    return results


# ------------------------------------------------------------------------------------------------------- end to end
EXPECTED = {
    "vqa": ("vqa_accuracy", "visual-question-answering", KnowledgeCLIPForQuestionAnswering),
    "snli_ve": ("accuracy", None, KnowledgeCLIPForImageTextClassification),
    "nlvr2": ("accuracy", None, KnowledgeCLIPForImageTextClassification),
    "retrieval": ("mean_recall", "zero-shot-image-classification", KnowledgeCLIPModel),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_each_task_end_to_end(runs, task):
    args, output, result = runs[task]
    metric, pipeline_tag, model_class = EXPECTED[task]
    metrics = json.loads((output / "metrics.json").read_text())
    max_steps = 8 if task == "vqa" else 6
    assert metrics["global_step"] == max_steps and metrics["task"] == task
    assert [record["step"] for record in metrics["train_history"]] == list(range(1, max_steps + 1))
    assert all(np.isfinite(record["loss"]) and record["loss"] > 0 for record in metrics["train_history"])
    assert [record["step"] for record in metrics["eval_history"]] == ([4, 8] if task == "vqa" else [3, 6])
    assert all(0 <= record[metric] <= 1 for record in metrics["eval_history"])
    best = max(metrics["eval_history"], key=lambda record: record[metric])
    assert metrics["best_metric"] == best[metric] and metrics["metric_for_best_model"] == metric
    assert f"step {max_steps}/{max_steps}" in result.stderr and "samples/s" in result.stderr and "ETA" in result.stderr

    # One text of each split's files is too long for the 32 text positions: counted and logged.
    if task == "retrieval":
        assert metrics["truncated_texts"] == {"train": 0, "validation": 0, "test": 0}
        assert {"image_to_text_recall@1", "text_to_image_recall@10"} <= set(metrics["final_evaluation"])
        assert {"reranked_text_to_image_recall@1", "reranked_mean_recall"} <= set(metrics["final_evaluation"])
    elif task != "nlvr2":
        assert metrics["truncated_texts"]["train"] == 1
        assert re.search(r"train: 1 of \d+ texts exceed the text tower's 32 positions", result.stderr)

    for folder in (output, output / "best"):
        model = model_class.from_pretrained(folder)
        card = (folder / "README.md").read_text()
        assert "license: apache-2.0" in card
        assert (f"pipeline_tag: {pipeline_tag}" in card) if pipeline_tag else "pipeline_tag" not in card
    if task in ("vqa", "retrieval"):  # the test split is the validation split, scored by the best model
        test = json.loads((output / "test_results.json").read_text())
        at_best = next(record for record in metrics["eval_history"] if record["step"] == metrics["best_step"])
        shared = set(test) & set(at_best)
        assert metric in shared and all(test[k] == pytest.approx(at_best[k]) for k in shared)
        assert metrics["test_evaluation"] == test and metrics["test_model"] == "best"
    else:
        assert not (output / "test_results.json").exists() and metrics["test_evaluation"] is None
    if task == "vqa":
        assert test["first_image/num_examples"] == 4 and 0 <= test["first_image/vqa_accuracy"] <= 1
        assert metrics["num_examples"]["test"] == 12
        vocabulary = [model.config.id2label[i] for i in range(model.config.num_labels)]
        assert model.config.num_labels == 5 and set(vocabulary) <= set(ANSWERS)
    if task in ("snli_ve", "nlvr2"):
        assert list(model.config.id2label.values()) == (SNLI_VE if task == "snli_ve" else ["False", "True"])
        assert model.config.num_images == (2 if task == "nlvr2" else 1)
    if task == "snli_ve":
        assert (
            "6 steps of 8 examples (4 per process x 1 processes x 2 accumulation), 3 steps per epoch" in result.stderr
        )
    if task == "nlvr2":  # from the plain CLIP checkpoint: a fresh fusion encoder of the requested size
        assert metrics["checkpoint_type"] == "clip" and "fusion encoder" in metrics["new_modules"]
        assert model.config.fusion_encoder_config.hidden_size == 24


@pytest.mark.slow
def test_two_processes_equal_one_on_the_same_global_batch(runs):
    """Retrieval: CLIP's loss over the global batch (FeatureGather), 2 x 4 examples vs 1 x 8."""
    args, single_output, _ = runs["retrieval"]
    output = single_output.parent / "retrieval-2proc"
    result = run_finetune([*args, "--per_device_train_batch_size", "4", "--output_dir", output], processes=2)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "MULTI_CPU with 2 process(es)" in result.stderr and "(4 per process x 2 processes" in result.stderr
    single = json.loads((single_output / "metrics.json").read_text())
    double = json.loads((output / "metrics.json").read_text())
    for a, b in zip(single["train_history"], double["train_history"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    for a, b in zip(single["eval_history"], double["eval_history"], strict=True):
        assert a["mean_recall"] == pytest.approx(b["mean_recall"], abs=1e-6)
        assert a["reranked_mean_recall"] == pytest.approx(b["reranked_mean_recall"], abs=1e-6)
    assert max_weight_difference(weights(single_output), weights(output)) < 1e-4


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(runs):
    """VQA with drop-path on (so the RNG must be restored too), killed at step 5, mid-epoch (6 steps per epoch): the
    resumed run restarts from checkpoint 4 inside the first epoch (after its evaluation at 4) and crosses into the
    second."""
    args, reference_output, _ = runs["vqa"]
    output = reference_output.parent / "vqa-killed"
    command = [sys.executable, str(FINETUNE), *map(str, args), "--output_dir", str(output)]
    process = subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True, cwd=REPO)  # fmt: skip
    seen = []
    for line in process.stdout:
        seen.append(line)
        if re.search(r"step 5/8 ", line):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert not (output / "metrics.json").exists()

    result = run_finetune([*args, "--output_dir", output, "--resume_from_checkpoint", "latest"])
    assert result.returncode == 0, result.stderr[-4000:]
    assert "checkpoint-4 at step 4" in result.stderr
    assert max_weight_difference(weights(output), weights(reference_output)) <= 1e-6
    assert max_weight_difference(weights(output / "best"), weights(reference_output / "best")) <= 1e-6
    resumed = json.loads((output / "metrics.json").read_text())
    reference = json.loads((reference_output / "metrics.json").read_text())
    assert eval_records(resumed) == eval_records(reference)  # the evaluation at 4 is the checkpoint's, kept
    assert (resumed["best_step"], resumed["best_metric"]) == (reference["best_step"], reference["best_metric"])
    assert [r["loss"] for r in resumed["train_history"]] == [r["loss"] for r in reference["train_history"]]


# ------------------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.slow
def test_id2label_mismatch_is_a_one_line_error(workspace, tmp_path):
    checkpoint = tmp_path / "other-labels"
    labels = {0: "yes", 1: "no", 2: "maybe"}
    KnowledgeCLIPForImageTextClassification.from_pretrained(workspace / "knowledge", id2label=labels).save_pretrained(
        checkpoint
    )
    # In process: the library's error names both label lists.
    with pytest.raises(TrainingConfigurationError, match=r"'yes', 'no', 'maybe'.*'entailment', 'neutral'"):
        load_finetuning_model("snli_ve", ModelArguments(model_name_or_path=str(checkpoint)), SNLI_VE, "SNLI-VE")
    # The script: one line, no traceback.
    args = [
        *COMMON,
        *task_args(workspace, "snli_ve"),
        "--model_name_or_path",
        checkpoint,
        "--output_dir",
        tmp_path / "o",
    ]
    result = run_finetune(args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert (
        "its id2label (3 labels ['yes', 'no', 'maybe'])" in last and "'entailment', 'neutral', 'contradiction'" in last
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--task", "captioning"], "--task must be one of vqa, snli_ve, nlvr2, retrieval"),
        (["--metric_for_best_model", "bleu"], "--task vqa reports vqa_accuracy"),
        (["--validation_annotations_file", None], "--task vqa needs --validation_annotations_file"),
        (["--train_file", "missing.json"], "--train_file missing.json: no such file"),
        (["--kd_loss_weight", "1"], "--kd_loss_weight: pre-training options"),
        (["--model_name_or_path", None], "--model_name_or_path is required"),
        (["--benchmark_demo_world"], "--benchmark_demo_world is a pre-training option"),
        (["--test_subsets_file", "subsets.json"], "--test_subsets_file needs --test_file"),
        (["--joint_relation", "relation"], "--joint_relation must be one of masked, task_token"),
        (["--task_head_inputs", "towers"], "--task_head_inputs must be one of joint, joint_and_towers"),
        (["--rerank_top_k", "5"], "--rerank_top_k is for --task retrieval only"),
    ],
)
def test_bad_invocations_fail_before_any_work(workspace, change, expected):
    args = [str(a) for a in [*COMMON, *task_args(workspace, "vqa"), "--model_name_or_path", workspace / "knowledge"]]
    flag, *value = change
    if flag in args:
        position = args.index(flag)
        del args[position : position + 2]
    if value != [None]:
        args += [flag, *map(str, value)]
    with pytest.raises(TrainingConfigurationError, match=re.escape(expected)):
        load_example("finetune").main(args)


def test_bad_test_subsets_files_name_the_file_and_key(tmp_path):
    cases = {
        "broken.json": ("{not json", r"broken.json: JSONDecodeError"),
        "list.json": ("[1, 2]", r"list.json: expected a JSON object"),
        "values.json": ('{"knowledge": [1, 2], "held_out": 3}', r"values.json: key 'held_out' must hold a list"),
        "booleans.json": ('{"knowledge": [true]}', r"booleans.json: key 'knowledge' must hold a list"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(TrainingConfigurationError, match=rf"--test_subsets_file .*{expected}"):
            load_test_subsets(str(tmp_path / name))
    (tmp_path / "good.json").write_text('{"knowledge": [10, 11], "named": ["dev0"]}')
    assert load_test_subsets(str(tmp_path / "good.json")) == {"knowledge": {10, 11}, "named": {"dev0"}}


# ------------------------------------------------------------------------------------------------------- the glue
def group_members(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return {group["name"]: {names[id(p)] for p in group["params"]} for group in groups}


@pytest.mark.parametrize("checkpoint", ["knowledge", "clip"])
def test_what_loading_initialises_is_new_and_the_rest_pretrained(workspace, checkpoint):
    model_args = ModelArguments(model_name_or_path=str(workspace / checkpoint))
    model, _, info = load_finetuning_model("snli_ve", model_args, SNLI_VE, "SNLI-VE")
    groups = finetuning_parameter_groups(model, 1e-5, 1e-3, 0.05, info["new_parameters"])
    members = group_members(model, groups)
    assert set(members) == {"pretrained/decay", "pretrained/no_decay", "new_modules/decay", "new_modules/no_decay"}
    new = members["new_modules/decay"] | members["new_modules/no_decay"]
    pretrained = members["pretrained/decay"] | members["pretrained/no_decay"]
    assert {"classifier.0.weight", "classifier.3.bias"} <= new
    assert "classifier.0.weight" in members["new_modules/decay"]
    assert "classifier.1.weight" in members["new_modules/no_decay"]  # LayerNorm
    fusion = {n for n, _ in model.named_parameters() if n.startswith("knowledge_clip.fusion_encoder.")}
    # A Knowledge-CLIP checkpoint's fusion encoder was trained: it is fine-tuned at the towers' rate, not reset to
    # the new modules' one; a CLIP checkpoint has none, so its fresh one is new.
    assert fusion <= (pretrained if checkpoint == "knowledge" else new)
    assert all(n.startswith("classifier.") for n in new) == (checkpoint == "knowledge")
    assert "knowledge_clip.text_model.encoder.layers.0.self_attn.q_proj.weight" in members["pretrained/decay"]
    lrs = {group["name"]: group["lr"] for group in groups}
    assert lrs["new_modules/decay"] == 1e-3 and lrs["pretrained/decay"] == 1e-5
    assert len(new) + len(pretrained) == sum(1 for p in model.parameters() if p.requires_grad)


def test_task_token_is_a_new_module_and_a_task_checkpoint_keeps_its_joint_relation(workspace, tmp_path):
    knowledge = ModelArguments(model_name_or_path=str(workspace / "knowledge"))
    model, processor, info = load_finetuning_model(
        "snli_ve", knowledge, SNLI_VE, "SNLI-VE", {"joint_relation": "task_token"}
    )
    assert info["new_modules"] == ["classifier", "task token"] and not model.task_token.any()
    groups = {g["name"]: g for g in finetuning_parameter_groups(model, 1e-5, 1e-3, 0.05, info["new_parameters"])}
    assert any(p is model.task_token for p in groups["new_modules/no_decay"]["params"])  # a token, like <head>
    model.save_pretrained(tmp_path / "task")
    processor.save_pretrained(tmp_path / "task")
    task = ModelArguments(model_name_or_path=str(tmp_path / "task"))
    loaded, _, info = load_finetuning_model("snli_ve", task, SNLI_VE, "SNLI-VE")
    assert loaded.config.joint_relation == "task_token" and info["new_modules"] == []
    assert info["new_parameters"] == frozenset()  # a task checkpoint has every weight: all of it is pre-trained
    with pytest.raises(TrainingConfigurationError, match="--joint_relation masked: the task checkpoint .* task_token"):
        load_finetuning_model("snli_ve", task, SNLI_VE, "SNLI-VE", {"joint_relation": "masked"})
    with pytest.raises(TrainingConfigurationError, match="--joint_relation is for the joint-encoder tasks"):
        FinetuningArguments(task="retrieval", joint_relation="task_token")


def test_dataset_order_is_a_function_of_seed_and_epoch(workspace, processor):
    images = sorted(str(p) for p in (workspace / "snli_ve" / "flickr30k-images").iterdir())
    records = [TaskRecord(text=f"text {i}", images=(images[i % 6],), label=i % 3) for i in range(10)]
    root = str(workspace / "snli_ve" / "flickr30k-images")
    first, again = TaskDataset(records, root, shuffle=True, seed=7), TaskDataset(records, root, shuffle=True, seed=7)
    orders = []
    for epoch in (0, 1, 0):
        first.set_epoch(epoch)
        orders.append([first[i]["index"] for i in range(10)])
    assert sorted(orders[0]) == list(range(10)) and orders[0] != orders[1] and orders[0] == orders[2]
    again.set_epoch(1)
    assert [again[i]["index"] for i in range(10)] == orders[1]
    assert [TaskDataset(records, root)[i]["index"] for i in range(10)] == list(range(10))
    # An image outside the split's directory is refused by the safe loader.
    outside = TaskDataset([TaskRecord(text="x", images=(str(workspace / "clip" / "config.json"),))], root)
    with pytest.raises(ValueError, match="escapes the root"):
        outside[0]


def test_collator_shapes_and_soft_scores(workspace, processor):
    left = sorted(str(p) for p in (workspace / "nlvr2" / "images" / "dev").iterdir())
    root = str(workspace / "nlvr2" / "images" / "dev")
    pairs = TaskDataset(
        [TaskRecord("one dog", (left[0], left[1]), label=1), TaskRecord("two", (left[2], left[3]), label=0)], root
    )
    batch = TaskCollator(processor, "nlvr2", 32)([pairs[0], pairs[1]])
    assert batch["pixel_values"].shape == (2, 2, 3, 32, 32) and batch["labels"].tolist() == [1, 0]
    vqa = TaskDataset([TaskRecord("q?", (left[0],), answer_labels=(0, 2), answer_scores=(1.0, 0.3)),
                       TaskRecord(LONG_TEXT, (left[1],))], root)  # fmt: skip
    batch = TaskCollator(processor, "vqa", 32, num_labels=4)([vqa[0], vqa[1]])
    assert torch.allclose(batch["labels"], torch.tensor([[1.0, 0, 0.3, 0], [0, 0, 0, 0]]))
    assert batch["pixel_values"].shape == (2, 3, 32, 32) and batch["input_ids"].shape == (2, 32)
    assert count_truncated_texts(processor.tokenizer, ["q?", LONG_TEXT, "red"], 32) == 1


class PredictsItsInput(torch.nn.Module):
    """A stand-in task model whose logits are its `pixel_values` row: the test chooses every prediction."""

    def forward(self, pixel_values, **inputs):
        return SimpleNamespace(logits=pixel_values)


@pytest.mark.parametrize("task", ["snli_ve", "vqa"])
def test_subset_metrics_score_exactly_the_examples_they_name(workspace, task):
    from accelerate import Accelerator

    args = [str(a) for a in task_args(workspace, task)]
    fields = {a[2:]: b for a, b in zip(args[::2], args[1::2])}
    fields["answer_vocab_size"] = int(fields.get("answer_vocab_size", 3129))
    data = load_task_data(FinetuningArguments(**fields), "validation", labels=ANSWERS if task == "vqa" else None)
    ids = data.example_ids
    assert len(ids) == len(data.records) and len(set(ids)) == len(ids)
    assert ids[:2] == (["dev0", "dev1"] if task == "snli_ve" else [10, 11])
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, len(data.labels), len(ids))
    batches = [  # uneven batches, out of order: the metric must follow `example_index`, not the order of arrival
        {"pixel_values": torch.eye(len(data.labels))[predicted[chunk]], "example_index": torch.tensor(chunk)}
        for chunk in np.array_split(rng.permutation(len(ids)), 3)
    ]
    subset = set(ids[::3])
    metrics = evaluate_task(PredictsItsInput(), {"examples": batches}, task, data, Accelerator(cpu=True),
                            subsets={"every_third": subset})  # fmt: skip
    kept = [i for i, example_id in enumerate(ids) if example_id in subset]
    if task == "snli_ve":
        expected = float(np.mean([predicted[i] == data.references[i] for i in kept]))
        assert metrics["every_third/accuracy"] == pytest.approx(expected)
        assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == np.array(data.references))))
    else:  # the official rule, literally: min(#humans that said it / 3, 1) over the 10 leave-one-out subsets

        def accuracy(i):
            answer, humans = data.labels[predicted[i]], data.references[i]
            return np.mean([min(sum(h == answer for h in humans[:j] + humans[j + 1 :]) / 3, 1) for j in range(10)])

        assert metrics["every_third/vqa_accuracy"] == pytest.approx(np.mean([accuracy(i) for i in kept]))
        assert metrics["vqa_accuracy"] == pytest.approx(np.mean([accuracy(i) for i in range(len(ids))]))
    assert metrics["every_third/num_examples"] == len(kept) and metrics["num_examples"] == len(ids)
    with pytest.raises(ValueError, match="'nothing' holds none"):
        evaluate_task(PredictsItsInput(), {"examples": batches}, task, data, Accelerator(cpu=True),
                      subsets={"nothing": {"no such id"}})  # fmt: skip


def test_reranked_retrieval_reads_the_e2e_embeddings_of_gallery_and_captions(workspace):
    from accelerate import Accelerator

    from knowledge_clip.reasoning import encode_entity_batch, entity_embeddings, query_embeddings

    model = KnowledgeCLIPModel.from_pretrained(workspace / "knowledge").eval()
    processor = KnowledgeCLIPProcessor.from_pretrained(workspace / "knowledge")
    args = [str(a) for a in task_args(workspace, "retrieval")]
    data = load_task_data(FinetuningArguments(**{a[2:]: b for a, b in zip(args[::2], args[1::2])}), "validation")
    loaders = evaluation_dataloaders(data, "retrieval", TaskCollator(processor, "retrieval", 32, None), batch_size=3)
    reranking = RetrievalReranking.from_processor(processor, top_k=3)
    metrics = evaluate_task(model, loaders, "retrieval", data, Accelerator(cpu=True), reranking=reranking)
    # Literally: the towers' embeddings, and the reasoning API's Y(image, "image of", -) and Y(-, -, caption).
    images = [open_image(path, data.image_dir) for path in data.gallery]
    captions = [record.text for record in data.records]
    with torch.no_grad():
        towers_images = F.normalize(
            model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output, dim=-1
        )
        tokens = processor(text=captions, padding=True, truncation=True, return_tensors="pt")
        towers_texts = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        features, slots = encode_entity_batch(model, processor, images, ["image of"])
        fusion_images = query_embeddings(model, features, slots, torch.zeros_like(slots))
        features, slots = encode_entity_batch(model, processor, captions)
        fusion_texts = entity_embeddings(model, features, slots)
    gathered = _fusion_retrieval_embeddings(model, loaders, data, Accelerator(cpu=True), reranking)
    assert torch.allclose(gathered[0], fusion_images, atol=1e-5) and torch.allclose(
        gathered[1], fusion_texts, atol=1e-5
    )
    ranks = reranked_retrieval_ranks(
        towers_images, towers_texts, torch.tensor(data.text_to_image), fusion_images, fusion_texts, 3
    )
    assert metrics["reranked_image_to_text_recall@1"] == pytest.approx(float((ranks[0] <= 1).float().mean()))
    assert metrics["reranked_text_to_image_recall@1"] == pytest.approx(float((ranks[1] <= 1).float().mean()))
    assert metrics["reranked_text_to_image_recall@5"] == pytest.approx(float((ranks[1] <= 5).float().mean()))
    plain = evaluate_task(model, loaders, "retrieval", data, Accelerator(cpu=True))
    assert {k: v for k, v in metrics.items() if not k.startswith("reranked_")} == pytest.approx(plain)


def test_history_keeps_the_best_and_round_trips():
    history = FinetuningHistory("accuracy")
    assert history.update(3, {"accuracy": 0.5}) and not history.update(6, {"accuracy": 0.5})
    assert history.update(9, {"accuracy": 0.7}) and (history.best_step, history.best_metric) == (9, 0.7)
    restored = FinetuningHistory("accuracy")
    restored.load_state_dict(history.state_dict())
    assert restored.state_dict() == history.state_dict()


def test_cards_and_push_without_network(workspace, tmp_path):
    model = KnowledgeCLIPForQuestionAnswering.from_pretrained(
        workspace / "knowledge", id2label=dict(enumerate(ANSWERS))
    )
    card = finetuned_model_card("vqa", model.config, "me/vqa", "apache-2.0", metrics={"vqa_accuracy": 0.5})
    assert card.data.pipeline_tag == "visual-question-answering" and "vqa_accuracy" in str(card)
    assert "pipeline_tag" not in str(finetuned_model_card("nlvr2", model.config, "me/n", "mit").data.to_yaml())
    # The card describes what the config makes the model read.
    text = str(card)
    assert "the relation slot masked, and a classifier reads its joint representation `Y(image, -, text)`." in text
    config = model.config.to_dict() | {"joint_relation": "task_token", "task_head_inputs": "joint_and_towers"}
    card = str(finetuned_model_card("vqa", type(model.config).from_dict(config), "me/vqa", "apache-2.0"))
    assert "a learned task token in the relation slot" in card and "beside the towers' L2-normalised" in card
    model.save_pretrained(tmp_path / "vqa")
    (tmp_path / "vqa" / "checkpoints").mkdir()

    class FakeApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, **kwargs):
            self.calls.append(("create_repo", repo_id))

        def upload_folder(self, repo_id, folder_path, **kwargs):
            self.calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path)), kwargs["ignore_patterns"]))
            return "https://huggingface.co/me/vqa/commit/0"

    api = FakeApi()
    kwargs = {"license": "apache-2.0", "base_model": None, "dataset_name": "VQAv2", "training_args": {}}
    urls = push_finetuned_model("vqa", str(tmp_path / "vqa"), None, "me/vqa", kwargs, {"vqa_accuracy": 0.5}, api=api)
    assert urls == {"me/vqa": "https://huggingface.co/me/vqa/commit/0"}
    assert api.calls[0] == ("create_repo", "me/vqa") and "README.md" in api.calls[1][2]
    assert "checkpoints/*" in api.calls[1][3]
    with pytest.raises(TrainingConfigurationError, match="namespace"):
        push_finetuned_model("vqa", str(tmp_path / "vqa"), None, "no-namespace", kwargs, api=api)
