# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`examples/reproduce_downstream.py` end to end at tiny sizes, two rows and one seed, and its table's aggregation."""

import json
from pathlib import Path

import pytest
from training_utils import load_example


@pytest.mark.slow
def test_two_rows_one_seed_end_to_end_then_everything_is_reused(tmp_path):
    script = load_example("reproduce_downstream")
    results_md = tmp_path / "results.md"
    hand_written = "# Results\n\nBy hand, before.\n"
    results_md.write_text(hand_written)
    argv = ["--smoke", "--output_dir", str(tmp_path / "out"), "--rows", "clip", "full", "--seeds", "0"]
    argv += ["--results_md", str(results_md)]
    table = script.main(argv)

    assert set(table) == {"clip", "full"}
    for row in table.values():
        assert set(row) == set(script.COLUMNS)
        assert all(cell is not None and 0 <= cell[0] <= 1 and cell[1] == 0 for cell in row.values())
    out = tmp_path / "out"
    splits = json.loads((out / "demo_world" / "downstream" / "splits.json").read_text())
    for row, checkpoint_type in (("clip", "clip"), ("full", "knowledge_clip")):
        for task in script.TASKS:
            run = out / "downstream" / row / "seed0" / task
            metrics = json.loads((run / "metrics.json").read_text())
            test = json.loads((run / "test_results.json").read_text())
            assert metrics["test_evaluation"] == test and metrics["checkpoint_type"] == checkpoint_type
            # CLIP rows fine-tune a fresh fusion encoder; Knowledge-CLIP rows keep the pre-trained one (retrieval
            # trains the towers only).
            if task != "retrieval":
                assert ("fusion encoder" in metrics["new_modules"]) == (row == "clip")
            control = run / "test_results_shuffled_images.json"
            if task == "retrieval":
                assert not control.exists()
                continue
            # The shuffled-image control scores the same examples and subsets.
            shuffled = json.loads(control.read_text())
            assert {k: v for k, v in shuffled.items() if "num_examples" in k} == {
                k: v for k, v in test.items() if "num_examples" in k
            }
            for subset, ids in splits[task]["test"].items():
                if ids:  # each subset of the world's splits.json scored on exactly its examples
                    assert test[f"{subset}/num_examples"] == len(ids)
    # The table is the runs' test results, rounded.
    vqa = json.loads((out / "downstream" / "full" / "seed0" / "vqa" / "test_results.json").read_text())
    assert table["full"]["VQA knowledge"][0] == pytest.approx(vqa["knowledge/vqa_accuracy"])
    saved = json.loads((out / "downstream.json").read_text())
    run = saved["runs"]["full"][0]["vqa"]  # the test results, and the shuffled-image control beside them
    assert {k: v for k, v in run.items() if not k.startswith("shuffled_images/")} == vqa
    assert run["shuffled_images/knowledge/num_examples"] == vqa["knowledge/num_examples"]
    assert saved["test_sizes"]["VQA knowledge"] == len(splits["vqa"]["test"]["knowledge"])
    markdown = results_md.read_text()
    assert markdown.startswith(hand_written) and script.SECTION_BEGIN in markdown
    cell = table["full"]["VQA"]
    assert f"| Knowledge-CLIP (full) | {cell[0]:.3f} ± 0.000 |" in markdown
    assert Path(out / "downstream.png").stat().st_size > 0

    # Resumable: a second invocation trains nothing, reproduces the table, and rewrites only its own section.
    results_md.write_text(markdown + "\nBy hand, after.\n")
    assert script.main(argv) == table
    again = results_md.read_text()
    assert again.startswith(hand_written) and again.endswith("\nBy hand, after.\n")
    assert again.count(script.SECTION_BEGIN) == 1
    assert "0 of 1 pre-training runs and 0 of 8 fine-tuning runs trained" in again


def test_table_is_mean_and_sample_std_and_sizes_name_the_queries():
    script = load_example("reproduce_downstream")
    runs = {
        "full": [
            {"vqa": {"vqa_accuracy": 0.4, "knowledge/vqa_accuracy": 0.5, "num_examples": 10, "knowledge/num_examples": 4},
             "retrieval": {"text_to_image_recall@1": 0.2, "num_texts": 50, "num_images": 10}},
            {"vqa": {"vqa_accuracy": 0.6, "knowledge/vqa_accuracy": 0.7, "num_examples": 10, "knowledge/num_examples": 4},
             "retrieval": {"text_to_image_recall@1": 0.4, "num_texts": 50, "num_images": 10}},
        ]
    }  # fmt: skip
    table = script.summarize(runs)
    assert table["full"]["VQA"] == pytest.approx((0.5, 0.1414213), abs=1e-6)
    assert table["full"]["VQA knowledge"] == pytest.approx((0.6, 0.1414213), abs=1e-6)
    assert table["full"]["IR R@1"] == pytest.approx((0.3, 0.1414213), abs=1e-6)
    assert table["full"]["NLVR2"] is None and table["full"]["TR R@1"] is None
    sizes = script.test_sizes(runs)
    assert sizes["VQA"] == 10 and sizes["VQA knowledge"] == 4 and sizes["IR R@1"] == 50 and sizes["TR R@1"] == 10
