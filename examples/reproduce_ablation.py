# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The structure of the paper's loss ablation (Pan et al., 2022, Tables 5-6) on the demo world, over several seeds.

    python examples/reproduce_ablation.py                      # 7 rows x 3 seeds: about 25 min on 2 CPU cores
    python examples/reproduce_ablation.py --smoke              # tiny sizes, about a minute: checks the plumbing only
    python examples/reproduce_ablation.py --rows clip full full_no_kd --seeds 0 1 2 3 4

Rows (all start from the same stage-0 CLIP, trained once on the world's captions, and train for the same steps on
the same data, the world's four graphs drawn equally often):

    clip            CLIP (stage 0), not trained further
    clip_continued  CLIP trained further on the same data for the same steps: only CLIP's contrastive loss on the
                    batches' image-text pairs (E2E, E2R, G2E and KD weights 0), evaluated as a CLIP
    no_e2e          Knowledge-CLIP without E2E
    no_e2r          Knowledge-CLIP without E2R
    no_g2e          Knowledge-CLIP without G2E
    full            Knowledge-CLIP, all four objectives
    full_no_kd      Knowledge-CLIP without KD

Columns: zero-shot top-1, image->text and text->image R@1, link-prediction MRR and relation accuracy (macro
averages over the Visual Genome, ConceptNet and VisualSem graphs), and the accuracy of every caption probe; each as
mean ± std over the seeds. Training runs go through `examples/pretrain.py` (one subprocess per run, so every run
starts from a fresh process and RNG) with the demo recipe's settings and the row's loss weights; finished runs of the
same command are reused, so an interrupted ablation resumes where it stopped (one of another command is refused).
Without a GPU, `--parallel_runs` runs train side by side, each with its share of the CPU threads: the demo's small
matrices keep two threads of one run far from busy (on two cores, two one-thread runs of 100 steps took 62 s side
by side; one two-thread run takes ~39 s per 100 steps). Writes `docs/results.md`, `docs/assets/ablation.png` and
`<output_dir>/ablation.json`.
"""

import argparse
import concurrent.futures
import dataclasses
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.evaluation import evaluate_on_demo_world, flatten_results, load_model_and_processor
from knowledge_clip.evaluation.probes import PROBE_KINDS
from knowledge_clip.training import TrainingConfigurationError
from knowledge_clip.training.arguments import ModelArguments, parse_arguments
from knowledge_clip.training.datasets import load_mixture, parse_dataset_spec
from knowledge_clip.training.stage0 import train_stage0_clip

logger = logging.getLogger("reproduce_ablation")

PRETRAIN_SCRIPT = Path(__file__).resolve().parent / "pretrain.py"
STAGE0_SEED = 0
# The demo world's graphs are drawn equally often (`--dataset demo:DIR:1`), not in proportion to their sizes: by
# size, ConceptNet is 141 of 6,244 training triplets and 300 steps show each of its facts about 1.5 times. On the
# downstream dev split (seeds 0-2), drawing the graphs equally raised the fusion encoder's top-1 on the knowledge
# split's held-out colour facts from 0.29-0.43 to 0.43-0.71 and its VQA colour-knowledge accuracy from 0.49-0.50 to
# 0.52-0.56 (docs/results.md).
GRAPH_MIXTURE_WEIGHT = 1
NO_KNOWLEDGE = {"e2e_loss_weight": 0, "e2r_loss_weight": 0, "g2e_loss_weight": 0, "kd_loss_weight": 0}

# name -> (label in the table, loss-weight overrides of examples/pretrain.py, or None for "no training")
ROWS = {
    "clip": ("CLIP (stage 0)", None),
    "clip_continued": ("CLIP + more training, same data and steps", {**NO_KNOWLEDGE, "clip_loss_weight": 1}),
    "no_e2e": ("Knowledge-CLIP w/o E2E", {"e2e_loss_weight": 0}),
    "no_e2r": ("Knowledge-CLIP w/o E2R", {"e2r_loss_weight": 0}),
    "no_g2e": ("Knowledge-CLIP w/o G2E", {"g2e_loss_weight": 0}),
    "full": ("Knowledge-CLIP (full)", {}),
    "full_no_kd": ("Knowledge-CLIP w/o KD", {"kd_loss_weight": 0}),
}
EVALUATED_AS_CLIP = {"clip", "clip_continued"}

KNOWLEDGE_GRAPHS = ("visual_genome", "conceptnet", "visualsem")
COLUMNS = {
    "zero-shot top-1": "zero_shot/top1_accuracy",
    "I→T R@1": "retrieval/image_to_text/recall@1",
    "T→I R@1": "retrieval/text_to_image/recall@1",
    "link MRR": [f"link_prediction/{graph}/both/mrr" for graph in KNOWLEDGE_GRAPHS],
    "relation acc.": [f"relation_prediction/{graph}/accuracy" for graph in KNOWLEDGE_GRAPHS],
    **{f"probe: {kind}": f"probes/{kind}/accuracy" for kind in (*PROBE_KINDS, "overall")},
}
"""Table column -> flattened result key, or a list of keys whose mean is the column (macro average over graphs)."""

SMOKE_PRETRAIN = {
    "fusion_hidden_size": 32,
    "fusion_num_layers": 1,
    "fusion_num_heads": 2,
    "fusion_intermediate_size": 64,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "max_steps": 2,
    "warmup_steps": 1,
    "eval_steps": 2,
    "max_eval_batches": 1,
    "checkpointing_steps": 0,
}
SMOKE_STAGE0 = {
    "stage0_steps": 2,
    "stage0_batch_size": 8,
    "stage0_hidden_size": 32,
    "stage0_num_layers": 1,
    "stage0_image_size": 32,
    "stage0_patch_size": 16,
    "stage0_vocab_size": 300,
}


def reproduction_parser(description: str, outputs: str, chart: str, extra_script: str) -> argparse.ArgumentParser:
    """
    The arguments this script and `examples/reproduce_downstream.py` share: output folder, demo world, seeds, rows,
    parallelism, the markdown and chart they write, `--smoke`, and extra flags for every run after `--`.

    Args:
        description (`str`): The parser's description.
        outputs (`str`): What `--output_dir` holds, for its help.
        chart (`str`): The chart's file name in `docs/assets/`.
        extra_script (`str`): The script every run invokes (the extra flags go to it).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output_dir", help=f"{outputs} (default: ablation; ablation-smoke with --smoke).")
    parser.add_argument("--demo_dir", help="Demo world directory (default: <output_dir>/demo_world).")
    parser.add_argument("--demo_size", default="default", choices=["tiny", "default", "large"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds (>= 3 for a std).")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="Rows to run.")
    parser.add_argument(
        "--parallel_runs",
        type=int,
        help="Runs at a time (default: 2 on CPU, 1 with a GPU); on CPU each gets cores / parallel_runs threads.",
    )
    parser.add_argument("--results_md", help="Markdown (default: docs/results.md; <output_dir> with --smoke).")
    parser.add_argument("--chart", help=f"PNG chart (default: docs/assets/{chart}; <output_dir> with --smoke).")
    parser.add_argument("--smoke", action="store_true", help="Tiny world, models and steps: a plumbing check.")
    parser.add_argument(
        "extra_args", nargs=argparse.REMAINDER, help=f"After `--`: extra flags for every {extra_script} run."
    )
    parser.set_defaults(chart_name=chart)
    return parser


def parse_reproduction_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses `reproduction_parser`'s arguments and fills in their defaults."""
    args = parser.parse_args(argv)
    if args.extra_args[:1] == ["--"]:
        args.extra_args = args.extra_args[1:]
    # Smoke runs never share a folder with real ones: reused runs are recognised by their files alone.
    args.output_dir = args.output_dir or ("ablation-smoke" if args.smoke else "ablation")
    args.demo_dir = args.demo_dir or os.path.join(args.output_dir, "demo_world")
    if args.parallel_runs is None:
        args.parallel_runs = 1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1)
    if args.parallel_runs < 1:
        parser.error("--parallel_runs must be at least 1")
    if args.smoke:
        args.demo_size = "tiny"
    args.results_md = args.results_md or (
        os.path.join(args.output_dir, "results.md") if args.smoke else os.path.join("docs", "results.md")
    )
    args.chart = args.chart or os.path.join(
        args.output_dir if args.smoke else os.path.join("docs", "assets"), args.chart_name
    )
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = reproduction_parser(
        __doc__.strip().splitlines()[0],
        "Runs, per-run results and ablation.json",
        "ablation.png",
        "examples/pretrain.py",
    )
    parser.add_argument("--max_steps", type=int, help="Optimiser steps of every run (default: the demo recipe's).")
    parser.add_argument("--validation_fraction", type=float, default=0.05, help="Held-out triplets per graph.")
    parser.add_argument("--max_link_prediction_triplets", type=int, default=500, help="Per graph (0: all).")
    args = parse_reproduction_args(parser, argv)
    args.pretrain_args = args.extra_args
    if args.smoke:
        args.max_link_prediction_triplets = min(args.max_link_prediction_triplets or 20, 20)
    return args


def demo_recipe() -> dict:
    """The demo settings of `examples/pretrain.py` (its `DEMO_DEFAULTS`), which apply only without a base model."""
    spec = importlib.util.spec_from_file_location("knowledge_clip_pretrain_script", PRETRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: value for name, value in module.DEMO_DEFAULTS.items() if name != "output_dir"}


def check_trainer_flags(rows: Sequence[str]) -> None:
    """Fails early, naming them, when `examples/pretrain.py` lacks a loss-weight flag a requested row needs."""
    flags = {field.name for field in dataclasses.fields(ModelArguments)}
    needed = sorted({name for row in rows if ROWS[row][1] for name in ROWS[row][1]} - flags)
    if needed:
        raise SystemExit(
            f"examples/pretrain.py has no flag(s) {['--' + n for n in needed]} (knowledge_clip.training.arguments."
            f"ModelArguments), which rows {[r for r in rows if ROWS[r][1] and set(ROWS[r][1]) & set(needed)]} need."
        )


def as_flags(values: dict) -> list[str]:
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def train_stage0(args: argparse.Namespace) -> str:
    """The common starting point of every row: the stage-0 CLIP, trained once (cached by `train_stage0_clip`)."""
    stage0_dir = os.path.join(args.output_dir, "stage0_clip")
    stage0_flags = as_flags(SMOKE_STAGE0) if args.smoke else []
    _, data_args, stage0_args, _ = parse_arguments(
        ["--demo_dir", args.demo_dir, "--demo_size", args.demo_size, *stage0_flags]
    )
    mixture = load_mixture(
        [parse_dataset_spec(f"demo:{args.demo_dir}")],
        args.validation_fraction,
        STAGE0_SEED,
        args.demo_size,
        data_args.demo_seed,
    )
    train_stage0_clip(mixture.train_graphs, stage0_args, stage0_dir, STAGE0_SEED)
    return stage0_dir


def run_dir_of(args: argparse.Namespace, row: str, seed: int) -> str:
    return os.path.join(args.output_dir, "runs", row, f"seed{seed}")


RUN_COMMAND_FILE = "command.json"


def is_finished(run_dir: str, finished_file: str, command: list[str]) -> bool:
    """
    Whether `run_dir` holds a finished run (its `finished_file`) of `command`, which `run_commands` records in the run
    folder (without the interpreter's path). A finished run of another command (the recipe or the flags changed since,
    or the run predates the record) stops the script, naming the folder: reusing it would put two recipes in one
    table.
    """
    if not os.path.isfile(os.path.join(run_dir, finished_file)):
        return False
    recorded = Path(run_dir, RUN_COMMAND_FILE)
    if recorded.is_file() and json.loads(recorded.read_text(encoding="utf-8")) == command[1:]:
        return True
    raise SystemExit(
        f"{run_dir} holds a finished run of another command than this invocation's (the recipe or the flags changed, "
        f"or the run predates its {RUN_COMMAND_FILE}): remove it, or pass another --output_dir."
    )


def pretrain_command(args: argparse.Namespace, stage0_dir: str, row: str, seed: int, recipe: dict) -> list[str]:
    """The `examples/pretrain.py` command line of one (row, seed): the demo recipe with the row's loss weights.

    The trainer's own end-of-run demo benchmark and its checkpoints are turned off: `evaluate_run` evaluates every
    run the same way, and an interrupted run is simply trained again.
    """
    settings = {**recipe, **(SMOKE_PRETRAIN if args.smoke else {}), **ROWS[row][1]}
    settings.update(benchmark_demo_world=False, checkpointing_steps=0)
    if args.max_steps is not None:
        settings["max_steps"] = args.max_steps
    return [
        sys.executable,
        str(PRETRAIN_SCRIPT),
        "--model_name_or_path",
        stage0_dir,
        "--dataset",
        f"demo:{args.demo_dir}:{GRAPH_MIXTURE_WEIGHT}",
        "--demo_size",
        args.demo_size,
        "--validation_fraction",
        str(args.validation_fraction),
        "--seed",
        str(seed),
        "--output_dir",
        run_dir_of(args, row, seed),
        "--report_to",
        "none",
        *as_flags(settings),
        *args.pretrain_args,
    ]


def train_runs(args: argparse.Namespace, stage0_dir: str, jobs: list[tuple[str, int]], recipe: dict) -> int:
    """Trains every (row, seed) of `jobs` that has no finished run yet, `args.parallel_runs` at a time; returns how
    many it trained. Each run's output goes to `<run dir>/train.log`."""
    commands = {}
    for row, seed in jobs:
        run_dir = run_dir_of(args, row, seed)
        command = pretrain_command(args, stage0_dir, row, seed, recipe)
        if is_finished(run_dir, "metrics.json", command):
            logger.info(f"{row} seed {seed}: reusing {run_dir}")
        else:
            commands[f"{row} seed {seed}"] = (command, os.path.join(run_dir, "train.log"))
    run_commands(commands, args.parallel_runs)
    return len(commands)


def run_commands(commands: dict[str, tuple[list[str], str]], parallel_runs: int) -> None:
    """
    Runs `{name: (command, log path)}`, `parallel_runs` at a time, each with its output in its log and, without a GPU,
    its share of the CPU threads. A failed command stops the others and exits naming its log. Each command is recorded
    beside its log (`RUN_COMMAND_FILE`), for `is_finished`.
    """
    environment = dict(os.environ)
    if not torch.cuda.is_available():
        threads = str(max(1, (os.cpu_count() or 1) // parallel_runs))
        environment.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)

    def run(name: str) -> None:
        command, log_path = commands[name]
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        Path(os.path.dirname(log_path), RUN_COMMAND_FILE).write_text(json.dumps(command[1:]), encoding="utf-8")
        logger.info(f"{name}: running, log in {log_path}\n  {' '.join(command)}")
        begin = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment).returncode
        if returncode != 0:
            raise RuntimeError(f"{name}: {os.path.basename(command[1])} exited with {returncode}, see {log_path}")
        logger.info(f"{name}: done in {time.perf_counter() - begin:.0f}s")

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel_runs) as pool:
        futures = [pool.submit(run, name) for name in commands]
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            if error is not None:
                for other in futures:
                    other.cancel()
                raise SystemExit(str(error))


def evaluate_run(args: argparse.Namespace, world, row: str, model_dir: str, seed: int) -> dict:
    """Evaluates one run on the held-out triplets of its seed (cached as `<output_dir>/results/<row>/seed<seed>.json`)."""
    cache = Path(args.output_dir, "results", row, f"seed{seed}.json")
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    model, processor = load_model_and_processor(model_dir)
    if row in EVALUATED_AS_CLIP and hasattr(model, "to_clip"):
        model = model.to_clip().eval()
    results = evaluate_on_demo_world(
        model,
        processor,
        world,
        split_seed=seed,
        validation_fraction=args.validation_fraction,
        max_link_prediction_triplets=args.max_link_prediction_triplets or None,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def column_value(flat: dict, keys: str | list[str]) -> float | None:
    """The column's number for one run: the value, the mean of several, or None when unavailable."""
    values = [flat.get(key) for key in ([keys] if isinstance(keys, str) else keys)]
    numbers = [value for value in values if isinstance(value, (int, float))]
    return float(np.mean(numbers)) if numbers else None


def summarize(results: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float] | None]]:
    """Per row and column, (mean, sample std) over the seeds, or None when the metric is unavailable for the row."""
    table = {}
    for row, runs in results.items():
        flats = [flatten_results(run) for run in runs]
        table[row] = {}
        for column, keys in COLUMNS.items():
            values = [column_value(flat, keys) for flat in flats]
            values = [value for value in values if value is not None]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            table[row][column] = (float(np.mean(values)), std) if values else None
    return table


DISCUSSION_MARKER = "<!-- Written by hand: reproduce_ablation.py keeps everything from this line on. -->"


def write_markdown(args: argparse.Namespace, table: dict, path: str, provenance: str = "") -> None:
    """Writes the table (and `provenance`, a line on how it was produced) to `path`.

    A hand-written discussion of the numbers, below `DISCUSSION_MARKER` in an existing file, is kept: regenerating
    the table does not erase it (re-read it when the numbers change).
    """
    lines = [
        "# Results on the demo world",
        "",
        "Two reproductions of the paper's evidence on the demo world, sharing their pre-training runs: the loss "
        "ablation with the towers scored zero-shot (`examples/reproduce_ablation.py`, this section), and every row "
        "fine-tuned on the world's downstream tasks (`examples/reproduce_downstream.py`, "
        "[below](#downstream-fine-tuning-on-the-demo-world)).",
        "",
        "## Loss ablation: the towers, zero-shot",
        "",
        f"The structure of Tables 5-6 of Pan et al. (2022), reproduced by `examples/reproduce_ablation.py` on the "
        f"`{args.demo_size}` demo world: every row starts from the same stage-0 CLIP and trains for the same steps on "
        f"the same data; mean ± std over seeds {args.seeds}. Link MRR (filtered, both directions) and relation "
        f"accuracy are macro averages over the held-out triplets of the {', '.join(KNOWLEDGE_GRAPHS)} graphs; "
        "probes are the accuracy of preferring the true caption (50% is chance). — marks a metric the row cannot "
        "compute (a CLIP has no fusion encoder). Metric definitions: [evaluation.md](evaluation.md).",
        "",
        "| row | " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row, columns in table.items():
        cells = [f"{cell[0]:.3f} ± {cell[1]:.3f}" if cell else "—" for cell in columns.values()]
        lines.append(f"| {ROWS[row][0]} | " + " | ".join(cells) + " |")
    lines += ["", f"![ablation chart]({os.path.relpath(args.chart, os.path.dirname(path) or '.')})", ""]
    if provenance:
        lines += [provenance, ""]
    previous = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else ""
    if DISCUSSION_MARKER in previous:
        lines.append(previous[previous.index(DISCUSSION_MARKER) :].rstrip("\n") + "\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def plot(table: dict, path: str) -> None:
    """One group of bars per column of `table` ({row: {column: (mean, std) or None}}), one bar per row, with the std
    as error bars and chance (0.5) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(next(iter(table.values())))
    width = 0.8 / len(table)
    figure, axis = plt.subplots(figsize=(max(10, 1.4 * len(columns)), 4.5))
    for index, (row, cells) in enumerate(table.items()):
        means = [cells[c][0] if cells[c] else np.nan for c in columns]
        stds = [cells[c][1] if cells[c] else 0.0 for c in columns]
        positions = np.arange(len(columns)) + (index - (len(table) - 1) / 2) * width
        axis.bar(positions, means, width, yerr=stds, capsize=2, label=ROWS[row][0])
    axis.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right")
    axis.set_ylabel("score")
    axis.set_ylim(0, 1)
    axis.axhline(0.5, color="grey", linewidth=0.6, linestyle="--")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_trainer_flags(args.rows)
    begin = time.perf_counter()
    recipe = demo_recipe()
    world = build_demo_world(args.demo_dir, size=args.demo_size)
    stage0_dir = train_stage0(args)
    trained = [(row, seed) for seed in args.seeds for row in args.rows if ROWS[row][1] is not None]
    num_trained = train_runs(args, stage0_dir, trained, recipe)

    results = {row: [] for row in args.rows}
    for seed in args.seeds:
        for row in args.rows:
            model_dir = stage0_dir if ROWS[row][1] is None else run_dir_of(args, row, seed)
            results[row].append(evaluate_run(args, world, row, model_dir, seed))
    minutes = (time.perf_counter() - begin) / 60
    provenance = (
        f"This table: {minutes:.1f} min of wall time on {os.cpu_count()} CPU cores"
        f"{' and a GPU' if torch.cuda.is_available() else ''}, {args.parallel_runs} training run(s) at a time; "
        f"{num_trained} of {len(trained)} runs trained in that invocation (the others were reused)."
    )

    table = summarize(results)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    summary = {"seeds": args.seeds, "rows": args.rows, "parallel_runs": args.parallel_runs, "minutes": minutes}
    with open(os.path.join(args.output_dir, "ablation.json"), "w", encoding="utf-8") as file:
        json.dump({**summary, "runs_trained": num_trained, "table": table, "runs": results}, file, indent=1)
    write_markdown(args, table, args.results_md, provenance)
    plot(table, args.chart)
    logger.info(f"{provenance} Wrote {args.results_md}, {args.chart} and {args.output_dir}/ablation.json.")
    return table


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except TrainingConfigurationError as error:  # a bad invocation: its one-line message, no traceback
        raise SystemExit(str(error)) from None
