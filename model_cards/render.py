# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Renders the cards of the models knowledge-clip publishes into `model_cards/<name>/README.md` (`make cards`).

Every card comes from the package's template (`knowledge_clip.hub.create_model_card`, or
`knowledge_clip.training.finetuning.finetuned_model_card` for the task models) and from three inputs, nothing else:

- the recipe in `examples/configs/` (training settings, data, base model, license);
- for the models that exist, the measured run in `model_cards/measured/<name>.json` (the command that made it, the
  trained model's `config.json`, the numbers it measured, and for the classifiers the same test split scored with
  the images shuffled across examples), copied from that run's output;
- for the recipes no model of which has been trained here, the tower shapes of the CLIP checkpoint the recipe starts
  from and the numbers the paper reports, which the card lists as the paper's.

`python model_cards/render.py --check` renders into memory and exits 1 naming every card that differs from the
committed file; tests/test_model_cards.py runs it, so the cards never drift from the template or the recipes.
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_clip import KnowledgeCLIPConfig, hub
from knowledge_clip.evaluation.benchmarks import demo_world_card_results
from knowledge_clip.training.accelerator import flat_config
from knowledge_clip.training.arguments import parse_arguments
from knowledge_clip.training.finetuning import TASK_METRICS, finetuned_model_card

CARDS_DIR = Path(__file__).resolve().parent
REPO = CARDS_DIR.parent
MEASURED_DIR = CARDS_DIR / "measured"
NAMESPACE = "knowledge-clip"
"""The Hub namespace the project publishes under."""

# What Pan et al. (2022) report for their models fine-tuned on each task (CLIP -> Knowledge-CLIP).
PAPER_TABLE_1 = (
    hub.PaperResult("Table 1 (ViT-L/14)", "Visual question answering", "VQAv2 test-dev", "accuracy", "74.10", "76.11"),
    hub.PaperResult("Table 1 (ViT-L/14)", "Visual entailment", "SNLI-VE", "accuracy", "80.01", "80.97"),
    hub.PaperResult("Table 1 (ViT-L/14)", "Image retrieval", "Flickr30K", "R@1", "72.4", "75.7"),
)
PAPER_TABLES_5_6 = (
    hub.PaperResult("Tables 5-6 (ViT-B/32)", "Image retrieval", "Flickr30K", "R@1", "63.1", "67.2"),
)  # fmt: skip

UNTRAINED = (
    "**No model has been trained with this recipe yet.** This card is the one `examples/pretrain.py "
    "{recipe}` writes, rendered before training: the settings below are the recipe's and the tower shapes "
    "{base_model}'s; no result of this model exists, and the numbers under *Reported in the paper* are Pan et "
    "al.'s, for their own models."
)
DEMO_PROVENANCE = (
    "Trained by `make demo` (`accelerate launch examples/pretrain.py`, the recipe `examples/configs/demo.yaml`) on "
    "the built-in demo world of coloured shapes: a small CLIP trained there first (stage 0) and continued as "
    "Knowledge-CLIP, on 2 CPU cores. The evaluation results are that run's, on the demo world's held-out data; they "
    "say nothing about real images."
)
TASK_PROVENANCE = (
    "Fine-tuned from [{base_model}](https://huggingface.co/{base_model}) on the demo world's {dataset} files (written "
    "in the published format) by `{command}`. The evaluation is that run's, once, on the demo world's test split; it "
    "says nothing about real images.{control}"
)
SHUFFLED_IMAGES_CONTROL = (
    " With each test example's image(s) taken from another test example, the same model scores {metric} "
    "{shuffled:.3f} against {score:.3f}: the difference is what it reads from the images, the rest it scores from the "
    "text alone (the *images shuffled* columns of docs/results.md in knowledge-clip)."
)
TASK_DATASETS = {"vqa": "VQAv2", "snli_ve": "SNLI-VE", "nlvr2": "NLVR2", "retrieval": "Karpathy-split"}


@dataclass(frozen=True)
class PretrainedCard:
    """A pre-trained Knowledge-CLIP: its full model's card and its CLIP export's card.

    Args:
        name (`str`): Repository name under `NAMESPACE`; the CLIP export is `<name>-clip`.
        recipe (`str`): The training config, relative to the repository root.
        paper_results (`tuple[hub.PaperResult, ...]`): The paper's numbers for this backbone.
    """

    name: str
    recipe: str
    paper_results: tuple[hub.PaperResult, ...] = field(default=())


@dataclass(frozen=True)
class TaskCard:
    """A task model fine-tuned from a pre-trained model of the project, with a measured run.

    Args:
        name (`str`): Repository name under `NAMESPACE`.
        task (`str`): The `examples/finetune.py --task`.
        base_model (`str`): The repository name of the model fine-tuning started from.
    """

    name: str
    task: str
    base_model: str


PRETRAINED = (
    PretrainedCard("knowledge-clip-demo", "examples/configs/demo.yaml"),
    PretrainedCard("knowledge-clip-vit-b-32", "examples/configs/vit-b-32.yaml", PAPER_TABLES_5_6),
    PretrainedCard("knowledge-clip-vit-l-14", "examples/configs/vit-l-14.yaml", PAPER_TABLE_1),
)
TASKS = tuple(
    TaskCard(f"knowledge-clip-demo-{task.replace('_', '-')}", task, "knowledge-clip-demo")
    for task in ("vqa", "snli_ve", "nlvr2", "retrieval")
)


def measured(name: str) -> dict | None:
    """The measured run of model `name`, or `None` when no model of it has been trained here."""
    path = MEASURED_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recipe_config(base_model: str, model_args) -> KnowledgeCLIPConfig:
    """The configuration a recipe gives a model continued from OpenAI's `base_model`, before its data fix the
    relation vocabulary."""
    fusion = model_args.fusion_size_overrides() | model_args.fusion_dropout_overrides()
    return KnowledgeCLIPConfig(
        **hub.OPENAI_CLIP_TOWERS[base_model], fusion_encoder_config=fusion, **model_args.config_overrides()
    )


def pretrained_cards(spec: PretrainedCard) -> dict[str, str]:
    """The full model's and the CLIP export's cards, by repository name."""
    model_args, data_args, _, args = parse_arguments([str(REPO / spec.recipe)])
    repo_id, clip_repo_id = f"{NAMESPACE}/{spec.name}", f"{NAMESPACE}/{spec.name}{hub.CLIP_REPO_SUFFIX}"
    run = measured(spec.name)
    if run is not None:
        config = KnowledgeCLIPConfig.from_dict(run["config"])
        eval_results, provenance = demo_world_card_results(run["benchmarks"], "knowledge_clip"), DEMO_PROVENANCE
    else:
        config = recipe_config(model_args.model_name_or_path, model_args)
        eval_results = None
        provenance = UNTRAINED.format(recipe=spec.recipe, base_model=model_args.model_name_or_path)
    card_kwargs = {
        "base_model": model_args.model_name_or_path,
        "license": args.license,
        "datasets": data_args.dataset,
        "training_args": flat_config(args),
        "eval_results": eval_results,
        "provenance": provenance,
        "paper_results": spec.paper_results,
    }
    full = hub.create_model_card(config, repo_id, clip_repo_id=clip_repo_id, **card_kwargs)
    clip = hub.create_model_card(
        config, clip_repo_id, clip_export=True, full_model_repo_id=repo_id, clip_repo_id=clip_repo_id, **card_kwargs
    )
    return {spec.name: str(full), spec.name + hub.CLIP_REPO_SUFFIX: str(clip)}


def task_card(spec: TaskCard) -> str:
    """The card of a fine-tuned task model, from its measured run."""
    run = measured(spec.name)
    if run is None:
        raise FileNotFoundError(f"{MEASURED_DIR / spec.name}.json: the task model {spec.name} has no measured run.")
    base_model = f"{NAMESPACE}/{spec.base_model}"
    control = ""
    if spec.task != "retrieval":  # an image-text classifier can answer from the text alone
        metric = TASK_METRICS[spec.task][0]  # the task's headline metric
        control = SHUFFLED_IMAGES_CONTROL.format(
            metric=metric, shuffled=run["test_results_shuffled_images"][metric], score=run["test_results"][metric]
        )
    provenance = TASK_PROVENANCE.format(
        base_model=base_model, dataset=TASK_DATASETS[spec.task], command=run["command"], control=control
    )
    return str(
        finetuned_model_card(
            spec.task,
            KnowledgeCLIPConfig.from_dict(run["config"]),
            f"{NAMESPACE}/{spec.name}",
            license=run["license"],
            base_model=base_model,
            dataset_name=f"demo-world-{TASK_DATASETS[spec.task]}",
            metrics=run["test_results"],
            training_args=run["training_args"],
            provenance=provenance,
        )
    )


def render_all() -> dict[str, str]:
    """Every card, by repository name."""
    cards = {}
    for spec in PRETRAINED:
        cards |= pretrained_cards(spec)
    for spec in TASKS:
        cards[spec.name] = task_card(spec)
    return cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Compare with the committed cards; write nothing.")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = CARDS_DIR / name / "README.md"
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(CARDS_DIR.parent)))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"{len(stale)} card(s) differ from the template and recipes; run `make cards`: {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
