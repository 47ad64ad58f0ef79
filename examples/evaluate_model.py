# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Evaluate a Knowledge-CLIP or plain CLIP checkpoint, zero-shot, and write `results.json` and `results.md`.

    python examples/evaluate_model.py knowledge-clip-demo                # the demo world (built when absent)
    python examples/evaluate_model.py stage0_clip --demo_dir demo_world  # the CLIP baseline on the same data
    python examples/evaluate_model.py openai/clip-vit-base-patch32 \
        --zero_shot /data/imagenet_val --retrieval /data/coco/annotations/captions_val2017.json \
        --kg visual_genome:/data/vg --kg conceptnet:/data/conceptnet-assertions-5.7.0.csv.gz --probes probes.jsonl

Metrics (docs/evaluation.md): zero-shot top-1/top-5 accuracy, image<->text Recall@1/5/10, filtered link-prediction
MRR and Hits@1/3/10, relation-prediction accuracy, and caption probes (negation, colour, size, relation swap). A plain
CLIP checkpoint gets every metric of the CLIP towers; the knowledge metrics say "unavailable" for it.

Link and relation prediction run on the triplets `examples/pretrain.py` held out: pass the training run's `--seed`
as `--split_seed` and its `--validation_fraction`.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.evaluation import (
    DEFAULT_TEMPLATES,
    evaluate_on_demo_world,
    evaluate_user_datasets,
    load_caption_probes,
    load_model_and_processor,
    results_to_markdown,
)
from knowledge_clip.evaluation.benchmarks import KNOWLEDGE_LOADERS

logger = logging.getLogger("evaluate_model")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("model", help="Knowledge-CLIP or CLIP checkpoint: a directory or a Hub id.")
    parser.add_argument(
        "--output_dir", help="Where results.json and results.md go (default: <model>/evaluation for a directory)."
    )
    demo = parser.add_argument_group("demo world (the default when no other dataset is given)")
    demo.add_argument("--demo_dir", help="Demo world directory, built when absent.")
    demo.add_argument("--demo_size", default="default", choices=["tiny", "default", "large"])
    demo.add_argument("--demo_seed", type=int, default=0, help="Generation seed of the demo world.")
    data = parser.add_argument_group("your datasets")
    data.add_argument("--zero_shot", help="imagefolder split with metadata.jsonl rows {file_name, label}.")
    data.add_argument("--class_names", help="Text file with one class name per line (default: the split's labels).")
    data.add_argument("--templates", help="Text file with one prompt template per line, each with one '{}'.")
    data.add_argument("--retrieval", help="Image-text pairs: COCO captions JSON, imagefolder or WebDataset shards.")
    data.add_argument(
        "--kg",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help=f"Knowledge graph for link/relation prediction, repeatable; KIND in {sorted(KNOWLEDGE_LOADERS)}.",
    )
    data.add_argument("--probes", action="append", default=[], help="Caption probes (.jsonl), repeatable.")
    split = parser.add_argument_group("held-out triplets (as examples/pretrain.py split them)")
    split.add_argument("--split_seed", type=int, default=42, help="The training run's --seed.")
    split.add_argument("--validation_fraction", type=float, default=0.05, help="The training run's fraction.")
    split.add_argument(
        "--max_link_prediction_triplets", type=int, default=500, help="Cap of held-out triplets per graph (0: all)."
    )
    parser.add_argument("--batch_size", type=int, default=64, help="Items per forward pass.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def _lines(path: str) -> list[str]:
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _knowledge_graphs(specs: Sequence[str]) -> dict:
    graphs = {}
    for spec in specs:
        kind, _, path = spec.partition(":")
        if kind not in KNOWLEDGE_LOADERS or not path:
            raise SystemExit(f"--kg {spec}: expected KIND:PATH with KIND in {sorted(KNOWLEDGE_LOADERS)}.")
        graph = KNOWLEDGE_LOADERS[kind](path)
        logger.info(f"{kind}: {graph.num_entities} entities, {graph.num_triplets} triplets\n{graph.report}")
        graphs[kind if kind not in graphs else f"{kind}:{path}"] = graph
    return graphs


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model, processor = load_model_and_processor(args.model)
    model.to(args.device)
    max_triplets = args.max_link_prediction_triplets or None
    results = {"model": args.model, "model_type": model.config.model_type}

    custom_data = args.zero_shot or args.retrieval or args.kg or args.probes
    if args.demo_dir or not custom_data:
        world = build_demo_world(args.demo_dir or "demo_world", seed=args.demo_seed, size=args.demo_size)
        logger.info(f"Evaluating {args.model} on the demo world {world.root}")
        results["demo_world"] = evaluate_on_demo_world(
            model,
            processor,
            world,
            split_seed=args.split_seed,
            validation_fraction=args.validation_fraction,
            max_link_prediction_triplets=max_triplets,
            batch_size=args.batch_size,
        )
    if custom_data:
        probes = [probe for path in args.probes for probe in load_caption_probes(path)]
        results["custom"] = evaluate_user_datasets(
            model,
            processor,
            classification=(args.zero_shot, _lines(args.class_names) if args.class_names else [])
            if args.zero_shot
            else None,
            retrieval=args.retrieval,
            knowledge_graphs=_knowledge_graphs(args.kg),
            probes=probes,
            templates=_lines(args.templates) if args.templates else DEFAULT_TEMPLATES,
            split_seed=args.split_seed,
            validation_fraction=args.validation_fraction,
            max_link_prediction_triplets=max_triplets,
            batch_size=args.batch_size,
        )

    default_dir = (
        os.path.join(args.model, "evaluation")
        if os.path.isdir(args.model)
        else os.path.join("evaluation", args.model.replace("/", "--"))
    )
    output_dir = args.output_dir or default_dir
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    markdown = results_to_markdown(results, title=f"Evaluation of {args.model}")
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    print(markdown)
    logger.info(f"Wrote results.json and results.md to {output_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
