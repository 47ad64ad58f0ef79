"""examples/evaluate_model.py on a Knowledge-CLIP and a plain CLIP checkpoint, and the ablation table's aggregation."""

import json
from pathlib import Path

import pytest
import torch
from tiny import tiny_config, tiny_processor, tiny_tokenizer
from training_utils import TINY_EVALUATE_ARGS, load_example

from knowledge_clip import KnowledgeCLIPModel


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, processor = KnowledgeCLIPModel(tiny_config(tokenizer)).eval(), tiny_processor(tokenizer)
    model.save_pretrained(root / "knowledge")
    processor.save_pretrained(root / "knowledge")
    model.save_clip_pretrained(root / "clip", processor)
    return root


def test_evaluate_script_writes_results_for_both_kinds_of_checkpoint(checkpoints, tmp_path):
    evaluate_script = load_example("evaluate_model")
    world = tmp_path / "world"
    outputs = {}
    for kind in ("knowledge", "clip"):
        argv = [str(checkpoints / kind), "--demo_dir", str(world), "--output_dir", str(tmp_path / kind)]
        argv += TINY_EVALUATE_ARGS
        results = evaluate_script.main(argv)
        assert json.loads((tmp_path / kind / "results.json").read_text()) == results
        assert "| demo_world/zero_shot/top1_accuracy |" in (tmp_path / kind / "results.md").read_text()
        outputs[kind] = results["demo_world"]
    knowledge, clip = outputs["knowledge"], outputs["clip"]
    assert knowledge["link_prediction"]["conceptnet"]["available"] is True
    assert clip["link_prediction"]["available"] is False and clip["relation_prediction"]["available"] is False
    # The exported CLIP has the same towers: every CLIP-tower metric is the same.
    for name in ("zero_shot", "retrieval", "probes"):
        assert clip[name] == knowledge[name], name


def test_ablation_table_is_mean_and_sample_std_over_seeds(tmp_path):
    ablation = load_example("reproduce_ablation")
    runs = {
        "clip": [
            {"zero_shot": {"top1_accuracy": 0.2}, "link_prediction": {"available": False, "reason": "CLIP"}},
            {"zero_shot": {"top1_accuracy": 0.4}, "link_prediction": {"available": False, "reason": "CLIP"}},
        ],
        "full": [
            {
                "zero_shot": {"top1_accuracy": 0.5},
                "link_prediction": {
                    g: {"both": {"mrr": m}} for g, m in zip(ablation.KNOWLEDGE_GRAPHS, (0.1, 0.2, 0.3))
                },
            },
            {
                "zero_shot": {"top1_accuracy": 0.7},
                "link_prediction": {
                    g: {"both": {"mrr": m}} for g, m in zip(ablation.KNOWLEDGE_GRAPHS, (0.3, 0.4, 0.5))
                },
            },
        ],
    }
    table = ablation.summarize(runs)
    assert table["clip"]["zero-shot top-1"] == pytest.approx((0.3, 0.1414213), abs=1e-6)
    assert table["clip"]["link MRR"] is None
    assert table["full"]["link MRR"] == pytest.approx((0.3, 0.1414213), abs=1e-6)
    args = ablation.parse_args(["--smoke", "--output_dir", str(tmp_path), "--seeds", "0", "1"])
    ablation.write_markdown(args, table, args.results_md)
    ablation.plot(table, args.chart)
    markdown = Path(args.results_md).read_text()
    assert "| CLIP (stage 0) | 0.300 ± 0.141 |" in markdown and "| — |" in markdown
    assert Path(args.chart).stat().st_size > 0


def test_ablation_trains_only_missing_runs_side_by_side_and_names_a_failed_run_log(tmp_path, monkeypatch):
    import os
    import sys

    ablation = load_example("reproduce_ablation")
    args = ablation.parse_args(["--output_dir", str(tmp_path), "--parallel_runs", "2"])
    script = (
        "import os, sys; run_dir = sys.argv[1]; print('threads', os.environ.get('OMP_NUM_THREADS'));"
        "open(os.path.join(run_dir, 'metrics.json'), 'w').write('{}') if sys.argv[2] == '0' else sys.exit(3)"
    )

    def fake_command(args, stage0_dir, row, seed, recipe):
        return [sys.executable, "-c", script, ablation.run_dir_of(args, row, seed), "0" if row != "no_g2e" else "1"]

    monkeypatch.setattr(ablation, "pretrain_command", fake_command)
    finished = Path(ablation.run_dir_of(args, "full", 0))
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    # A finished run that recorded another command (an older recipe) is refused, naming its folder ...
    (finished / ablation.RUN_COMMAND_FILE).write_text(json.dumps(["-c", "another recipe"]))
    with pytest.raises(SystemExit, match="holds a finished run of another command") as refused:
        ablation.train_runs(args, "stage0", [("full", 0)], recipe={})
    assert str(refused.value).startswith(str(finished))
    # ... and one of this command is reused.
    (finished / ablation.RUN_COMMAND_FILE).write_text(json.dumps(fake_command(args, "stage0", "full", 0, {})[1:]))
    jobs = [("full", 0), ("full", 1), ("no_e2e", 0), ("no_e2e", 1)]
    assert ablation.train_runs(args, "stage0", jobs, recipe={}) == 3
    threads = "None" if ablation.torch.cuda.is_available() else str(max(1, (os.cpu_count() or 1) // 2))
    for row, seed in jobs[1:]:
        command = fake_command(args, "stage0", row, seed, {})
        assert ablation.is_finished(ablation.run_dir_of(args, row, seed), "metrics.json", command)
        assert (Path(ablation.run_dir_of(args, row, seed)) / "train.log").read_text() == f"threads {threads}\n"
    assert not (finished / "train.log").exists()  # reused, not trained again
    with pytest.raises(SystemExit, match=r"no_g2e seed 0: .* exited with 3, see .*no_g2e/seed0/train.log"):
        ablation.train_runs(args, "stage0", [("no_g2e", 0)], recipe={})
