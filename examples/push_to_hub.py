# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Publish a trained Knowledge-CLIP model on the Hugging Face Hub, in both forms:

- `<repo_id>`: the full model (custom code, `trust_remote_code=True`), with its card;
- `<repo_id>-clip`: a stock `CLIPModel` export of its towers, whose card carries the hosted-widget examples.

Both folders are written to `--out_dir` first, so `--dry_run` shows exactly what would be uploaded.

    python examples/push_to_hub.py outputs/knowledge-clip --repo_id your-name/knowledge-clip-demo \
        --base_model openai/clip-vit-base-patch32 --datasets visual_genome conceptnet5 --dry_run

The token comes from `HF_TOKEN` or the login cache (`hf auth login`); it is never printed.
"""

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.hub import CLIP_REPO_SUFFIX, save_for_hub, upload_for_hub

logger = logging.getLogger("push_to_hub")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="A trained model: save_pretrained output of model and processor.")
    parser.add_argument("--repo_id", required=True, help="Hub id of the full model, '<namespace>/<name>'.")
    parser.add_argument("--clip_repo_id", help=f"Hub id of the CLIP export (default: <repo_id>{CLIP_REPO_SUFFIX}).")
    parser.add_argument("--out_dir", type=Path, help="Where to write the two folders (default: <model_dir>/hub).")
    parser.add_argument("--overwrite", action="store_true", help="Replace the folders if --out_dir holds them.")
    parser.add_argument("--base_model", help="Hub id of the CLIP checkpoint training started from (the teacher).")
    parser.add_argument("--license", help="License id (default: the base model's).")
    parser.add_argument("--datasets", nargs="*", default=[], help="Knowledge graphs and caption sets trained on.")
    parser.add_argument(
        "--results", type=Path, help="Evaluation results.json (default: <model_dir>/results.json when present)."
    )
    parser.add_argument("--eval_dataset", help="Dataset of the results.json tasks that name none.")
    parser.add_argument("--training_args", type=Path, help="JSON or YAML file of training settings for the card.")
    parser.add_argument("--widget_src", help="Image URL of the widget example (default: a Hub sample image).")
    parser.add_argument("--widget_labels", help="Comma-separated candidate labels of the widget example.")
    parser.add_argument("--private", action="store_true", help="Create the repositories as private.")
    parser.add_argument("--revision", help="Branch to upload to (created from main if missing).")
    parser.add_argument("--commit_message", default="Upload Knowledge-CLIP")
    parser.add_argument("--dry_run", action="store_true", help="Write the folders, upload nothing.")
    args = parser.parse_args(argv)
    if (args.widget_src is None) != (args.widget_labels is None):
        parser.error("--widget_src and --widget_labels go together.")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    results = args.results
    if results is None and (args.model_dir / "results.json").is_file():
        results = args.model_dir / "results.json"
    training_args = yaml.safe_load(args.training_args.read_text(encoding="utf-8")) if args.training_args else None
    widget = None
    if args.widget_src:
        widget = [{"src": args.widget_src, "candidate_labels": args.widget_labels, "example_title": "Example"}]

    model = KnowledgeCLIPModel.from_pretrained(args.model_dir)
    processor = KnowledgeCLIPProcessor.from_pretrained(args.model_dir)
    clip_repo_id = args.clip_repo_id or args.repo_id + CLIP_REPO_SUFFIX
    folders = save_for_hub(
        model,
        processor,
        args.out_dir or args.model_dir / "hub",
        args.repo_id,
        clip_repo_id,
        overwrite=args.overwrite,
        base_model=args.base_model,
        license=args.license,
        datasets=args.datasets,
        eval_results=results,
        eval_dataset=args.eval_dataset,
        training_args=training_args,
        widget=widget,
    )
    for repo_id, folder in ((args.repo_id, folders.full), (clip_repo_id, folders.clip)):
        files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        logger.info("%s <- %s: %s", repo_id, folder, json.dumps(files))
    if args.dry_run:
        logger.info("Dry run: nothing uploaded.")
        return {}
    return upload_for_hub(folders, args.repo_id, clip_repo_id, args.private, args.revision, args.commit_message)


if __name__ == "__main__":
    main()
