# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The published cards in model_cards/: rendered from the template, the recipes and the measured runs, and valid
Hub metadata."""

import importlib.util
import shutil

import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData
from training_utils import REPO

from knowledge_clip import KnowledgeCLIPConfig, hub

CARDS_DIR = REPO / "model_cards"


def load_render(cards_dir=CARDS_DIR):
    """`model_cards/render.py` as a module, reading and writing the cards under `cards_dir`."""
    spec = importlib.util.spec_from_file_location("knowledge_clip_render_cards", CARDS_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.CARDS_DIR, module.MEASURED_DIR = cards_dir, cards_dir / "measured"
    return module


@pytest.fixture(scope="module")
def render():
    return load_render()


@pytest.fixture(scope="module")
def cards(render):
    """Every committed card, by repository name, as `ModelCard`s."""
    return {
        name: ModelCard((CARDS_DIR / name / "README.md").read_text(encoding="utf-8")) for name in render.render_all()
    }


def test_committed_cards_are_the_rendered_ones(render, capsys):
    assert render.main(["--check"]) == 0, capsys.readouterr().out
    on_disk = {path.parent.name for path in CARDS_DIR.glob("*/README.md")}
    assert on_disk == set(render.render_all()), "a card folder that no spec renders"


def test_check_names_a_card_that_drifted(render, tmp_path, capsys):
    copy = tmp_path / "model_cards"
    shutil.copytree(CARDS_DIR, copy, ignore=shutil.ignore_patterns("render.py", "__pycache__"))
    card = copy / "knowledge-clip-vit-b-32" / "README.md"
    card.write_text(card.read_text(encoding="utf-8").replace("| `learning_rate` |", "| `lr` |"), encoding="utf-8")
    (copy / "knowledge-clip-demo-vqa" / "README.md").unlink()
    drifted = load_render(copy)
    assert drifted.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "2 card(s) differ" in out
    assert "model_cards/knowledge-clip-vit-b-32/README.md" in out and "knowledge-clip-demo-vqa/README.md" in out
    assert drifted.main([]) == 0  # `make cards` repairs both
    assert drifted.main(["--check"]) == 0


def test_demo_card_is_the_measured_demo_run(render, cards):
    run = render.measured("knowledge-clip-demo")
    assert run["command"] == "make demo"
    recipe = yaml.safe_load((REPO / "examples/configs/demo.yaml").read_text())
    fusion = run["config"]["fusion_encoder_config"]
    assert (fusion["hidden_size"], fusion["num_hidden_layers"], fusion["num_attention_heads"]) == (
        recipe["fusion_hidden_size"],
        recipe["fusion_num_layers"],
        recipe["fusion_num_heads"],
    )
    card = cards["knowledge-clip-demo"]
    assert f"| `max_steps` | {recipe['max_steps']} |" in card.text
    assert card.data.license == recipe["license"]
    # The model-index holds that run's numbers and nothing else.
    assert card.data.eval_results, "the demo run's measured results"
    measured_values = {value for task in run["benchmarks"].values() for value in _numbers(task)}
    assert all(result.metric_value in measured_values for result in card.data.eval_results)


def _numbers(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _numbers(value)
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield tree


@pytest.mark.parametrize("name", ["knowledge-clip-vit-b-32", "knowledge-clip-vit-l-14"])
def test_untrained_recipes_claim_no_result_and_mark_the_papers(render, cards, name):
    card = cards[name]
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert "No model has been trained with this recipe yet" in card.text
    assert "## Reported in the paper, not measured on this model" in card.text
    spec = next(spec for spec in render.PRETRAINED if spec.name == name)
    for result in spec.paper_results:
        row = f"| {result.source} | {result.task} | {result.dataset} | {result.metric} | {result.clip} | "
        assert row + f"{result.knowledge_clip} |" in card.text
    recipe = yaml.safe_load((REPO / spec.recipe).read_text())
    assert card.data.base_model == recipe["model_name_or_path"]
    assert f"| `learning_rate` | {recipe['learning_rate']} |" in card.text


def test_task_cards_report_their_measured_test_results(render, cards):
    for spec in render.TASKS:
        run, card = render.measured(spec.name), cards[spec.name]
        assert card.data.base_model == f"{render.NAMESPACE}/{spec.base_model}"
        assert card.data.eval_results, spec.name
        assert all(result.metric_value in set(_numbers(run["test_results"])) for result in card.data.eval_results)
        assert run["command"] in card.text
        assert "## Intended uses and limitations" in card.text
        if spec.task != "retrieval":  # a classifier over the joint representation can answer from the text alone
            assert "with their images shuffled" in card.text
            metric = render.TASK_METRICS[spec.task][0]
            control = f"scores {metric} {run['test_results_shuffled_images'][metric]:.3f} against "
            assert control + f"{run['test_results'][metric]:.3f}" in card.text


def test_full_model_cards_have_no_widget_and_say_where_it_is(render, cards):
    for spec in render.PRETRAINED:
        card = cards[spec.name]
        assert "widget" not in card.data.to_dict()
        clip_repo_id = f"{render.NAMESPACE}/{spec.name}{hub.CLIP_REPO_SUFFIX}"
        assert "Hub widgets run the stock-CLIP export, not custom code" in card.text
        assert f"[{clip_repo_id}](https://huggingface.co/{clip_repo_id})" in card.text


def test_clip_export_cards_are_valid_hub_metadata(render, cards):
    for spec in render.PRETRAINED:
        card = cards[spec.name + hub.CLIP_REPO_SUFFIX]
        metadata = card.data.to_dict()
        # huggingface_hub's own parsing and serialisation change nothing.
        assert ModelCardData(**metadata).to_dict() == metadata
        assert ModelCard(str(card)).data.to_dict() == metadata
        assert (
            metadata["pipeline_tag"] == "zero-shot-image-classification" and metadata["library_name"] == "transformers"
        )
        assert metadata["widget"], "the CLIP export carries the widget examples"
        for example in metadata["widget"]:
            assert_zero_shot_image_widget_example(example)


def assert_zero_shot_image_widget_example(example):
    """The Hub's zero-shot-image-classification widget examples (huggingface.js `WidgetExampleAssetAndZeroShotInput`
    and its `isAssetAndZeroShotInput` check), written out independently of `hub.WIDGET_EXAMPLE_KEYS`."""
    assert set(example) <= {"src", "candidate_labels", "multi_class", "example_title", "group", "output"}
    assert isinstance(example["src"], str) and example["src"].startswith(("https://", "http://"))
    assert isinstance(example["candidate_labels"], str)
    assert all(label.strip() for label in example["candidate_labels"].split(","))
    assert isinstance(example["multi_class"], bool)
    assert isinstance(example.get("example_title", ""), str) and isinstance(example.get("group", ""), str)


@pytest.mark.parametrize(
    "example, message",
    [
        ({"src": "cat.png", "candidate_labels": "a cat"}, "'src' must be an http(s) URL"),
        ({"src": "https://example.com/cat.png", "candidate_labels": []}, "'candidate_labels' must name"),
        ({"src": "https://example.com/cat.png", "candidate_labels": " , "}, "'candidate_labels' must name"),
        ({"src": "https://example.com/cat.png", "candidate_labels": "a", "multi_class": "no"}, "'multi_class' must"),
        ({"src": "https://example.com/cat.png", "candidate_labels": "a", "labels": "b"}, "unknown key(s) ['labels']"),
    ],
)
def test_widget_examples_outside_the_hub_schema_are_refused(example, message):
    config = KnowledgeCLIPConfig()
    with pytest.raises(ValueError, match=r"widget\[0\]") as error:
        hub.create_model_card(config, "org/m-clip", clip_export=True, full_model_repo_id="org/m", widget=[example])
    assert message in str(error.value)
