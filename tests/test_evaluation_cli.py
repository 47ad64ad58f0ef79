"""examples/evaluate.py on a Knowledge-CLIP and a plain CLIP checkpoint, and the ablation table's aggregation."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from tiny import tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _script(name):
    spec = importlib.util.spec_from_file_location(f"knowledge_clip_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    evaluate_script = _script("evaluate")
    world = tmp_path / "world"
    outputs = {}
    for kind in ("knowledge", "clip"):
        argv = [str(checkpoints / kind), "--demo_dir", str(world), "--demo_size", "tiny", "--output_dir"]
        argv += [str(tmp_path / kind), "--max_link_prediction_triplets", "3", "--batch_size", "16"]
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
    ablation = _script("reproduce_ablation")
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
