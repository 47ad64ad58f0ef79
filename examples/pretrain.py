# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Knowledge-CLIP pre-training (Pan et al., NeurIPS 2022): continue a CLIP model on knowledge graphs with the E2E, E2R
and G2E objectives and distillation (KD) against the frozen original CLIP.

    accelerate launch examples/pretrain.py                                  # the offline demo, < 10 min on 2 cores
    accelerate launch examples/pretrain.py examples/configs/vit-b-32.yaml   # a real run (edit the dataset paths)
    accelerate launch examples/pretrain.py --model_name_or_path openai/clip-vit-base-patch32 \
        --dataset visual_genome:/data/vg --dataset conceptnet:/data/conceptnet-assertions-5.7.0.csv.gz:0.3

Without `--model_name_or_path` this is the demo: the demo world is built if absent, a small CLIP and its tokenizer
are trained on the world's captions (stage 0, cached) and then continued as Knowledge-CLIP. See docs/training.md.
The recipe reads top to bottom; the reusable pieces live in `knowledge_clip.training`.
"""

import hashlib
import json
import logging
import math
import os
import sys
import time

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import CLIPModel, CLIPProcessor, PretrainedConfig
from transformers.utils import logging as transformers_logging

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor, hub
from knowledge_clip.data.collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.training.arguments import parse_arguments
from knowledge_clip.training.checkpointing import (
    TrainerState,
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from knowledge_clip.training.datasets import load_mixture, parse_dataset_spec
from knowledge_clip.training.optim import clamp_logit_scale, cosine_schedule_with_warmup, parameter_groups
from knowledge_clip.training.plotting import plot_training_curves
from knowledge_clip.training.stage0 import train_stage0_clip
from knowledge_clip.training.step import LOSS_NAMES, evaluate_loss, knowledge_forward

logger = get_logger(__name__)

# The demo: what a run without --model_name_or_path uses under any YAML file and flags (examples/configs/demo.yaml
# holds the same values). Sized to finish in minutes on two CPU cores.
DEMO_DEFAULTS = {
    "fusion_hidden_size": 128,
    "fusion_num_layers": 2,
    "fusion_num_heads": 4,
    "fusion_intermediate_size": 256,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 32,
    "max_steps": 300,
    "warmup_steps": 20,
    "learning_rate": 1e-4,
    "new_modules_learning_rate": 1e-3,
    "logging_steps": 10,
    "eval_steps": 100,
    "max_eval_batches": 4,
    "checkpointing_steps": 100,
    # One worker prepares the next batch while the main process computes: data waiting fell from ~8% of the step
    # time to ~2% at the same samples/s on two cores (a second worker only competes for them).
    "dataloader_num_workers": 1,
    "output_dir": "knowledge-clip-demo",
    "license": "apache-2.0",  # the stage-0 CLIP is trained here, from nothing: the package's own license applies
}


def main(argv=None):
    model_args, data_args, stage0_args, args = parse_arguments(argv, demo_defaults=DEMO_DEFAULTS)
    # Every check that needs no model or data runs first: a bad invocation fails in a second, not after loading.
    specs = [parse_dataset_spec(spec) for spec in data_args.dataset or [f"demo:{data_args.demo_dir}"]]
    resume_path = args.resume_from_checkpoint
    if resume_path not in (None, "latest") and not os.path.isdir(resume_path):
        raise SystemExit(f"--resume_from_checkpoint {resume_path}: no such directory.")
    if args.push_to_hub and not args.hub_model_id:
        raise SystemExit("--push_to_hub needs --hub_model_id (namespace/name).")
    try:  # the model card needs a license: fail now rather than after training
        hub.resolve_license(args.license, model_args.model_name_or_path)
    except ValueError as error:
        raise SystemExit(f"--license: {error}") from None
    os.makedirs(args.output_dir, exist_ok=True)

    # ---------------------------------------------------------------------------------------------------- accelerator
    # cpu=True on a machine without CUDA: accelerate only picks multi-process CPU (gloo) when told (HF_NOTES §8).
    # Unused parameters are expected: a batch of text-only triplets (ConceptNet) never touches the vision tower.
    trackers = available_trackers(args.report_to)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=trackers or None,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, force=True)
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    logger.info(
        f"{accelerator.state.distributed_type} with {accelerator.num_processes} process(es)", main_process_only=True
    )

    # ---------------------------------------------------------------------------------------------------------- data
    with accelerator.main_process_first():  # the demo world is built once, then read by every process
        mixture = load_mixture(
            specs, data_args.validation_fraction, args.seed, data_args.demo_size, data_args.demo_seed
        )
    logger.info("Training mixture:\n" + mixture.summary(), main_process_only=True)

    # ---------------------------------------------------------------------------------------------- model and teacher
    clip_path = model_args.model_name_or_path
    if clip_path is None:  # stage 0: "the original CLIP", trained here because none can be downloaded
        clip_path = stage0_args.stage0_dir or os.path.join(
            os.path.dirname(os.path.abspath(data_args.demo_dir)), "stage0_clip"
        )
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                train_stage0_clip(mixture.train_graphs, stage0_args, clip_path, args.seed)
    # Seeded here, after stage 0 (which a cached run skips), so the new modules' initialisation never depends on it.
    set_seed(args.seed)
    model, teacher, processor = load_model_teacher_processor(clip_path, model_args, mixture.relation_vocab)
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    if teacher is not None:
        # Frozen: eval mode, no gradient, never prepared (so never wrapped, synchronised or saved in a checkpoint).
        # Every process loads it from the same files, so every process distils from the same weights.
        teacher.eval().requires_grad_(False).to(accelerator.device)

    # G2E neighbourhoods follow the model's graph settings unless overridden.
    num_neighbors = data_args.num_neighbors or model.config.graph_num_neighbors
    num_hops = data_args.num_hops if data_args.num_hops is not None else model.config.graph_num_layers
    train_dataset = KnowledgeTripletDataset(mixture.train_graphs, weights=mixture.weights, seed=args.seed)
    train_collator = KnowledgeCLIPCollator(mixture.train_graphs, processor, num_neighbors, num_hops, seed=args.seed)
    # The dataset draws its own random order per epoch (set_epoch), so the loader reads it sequentially; its own
    # generator keeps iterator creation from consuming the global RNG, which would shift dropout after a resume.
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.per_device_train_batch_size,
        collate_fn=train_collator,
        num_workers=data_args.dataloader_num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    eval_dataloader = None
    if sum(indices.size for indices in mixture.valid_triplets) > 0:
        # Held-out triplets, read from the whole graphs; no G2E edges, which could only be drawn around them.
        eval_dataset = KnowledgeTripletDataset(mixture.graphs, triplet_indices=mixture.valid_triplets, seed=args.seed)
        eval_collator = KnowledgeCLIPCollator(mixture.graphs, processor, seed=args.seed, sample_graph_edges=False)
        eval_dataloader = torch.utils.data.DataLoader(
            eval_dataset, batch_size=args.per_device_eval_batch_size, collate_fn=eval_collator
        )

    # ---------------------------------------------------------------------------------------------------- optimizer
    optimizer = torch.optim.AdamW(
        parameter_groups(model, args.learning_rate, args.new_modules_learning_rate, args.weight_decay),
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare(eval_dataloader)
    steps_per_epoch = max(1, len(train_dataloader) // args.gradient_accumulation_steps)
    max_steps = args.max_steps or math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else round(args.warmup_ratio * max_steps)
    # Not prepared: accelerate would step a prepared scheduler once per process. Registered, so it is checkpointed.
    scheduler = cosine_schedule_with_warmup(optimizer, warmup_steps, max_steps)
    accelerator.register_for_checkpointing(scheduler)
    unwrapped = accelerator.unwrap_model(model)

    # -------------------------------------------------------------------------------------------------------- resume
    checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
    compatibility = run_compatibility(unwrapped, accelerator, args)
    state = TrainerState(compatibility=compatibility)
    if args.resume_from_checkpoint:
        checkpoint = (
            find_latest_checkpoint(checkpoints_dir)
            if args.resume_from_checkpoint == "latest"
            else args.resume_from_checkpoint
        )
        if checkpoint is None:
            logger.info(f"No complete checkpoint in {checkpoints_dir}: starting from scratch.", main_process_only=True)
        else:
            state = load_checkpoint(accelerator, checkpoint, compatibility)
            logger.info(f"Resumed from {checkpoint} at step {state.global_step}", main_process_only=True)

    # ----------------------------------------------------------------------------------------------------- trackers
    if trackers:
        accelerator.init_trackers(os.path.basename(os.path.abspath(args.output_dir)), config=flat_config(args))
    global_batch = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{max_steps} steps of {global_batch} triplets ({args.per_device_train_batch_size} per process x "
        f"{accelerator.num_processes} processes x {args.gradient_accumulation_steps} accumulation), "
        f"{steps_per_epoch} steps per epoch, warm-up {warmup_steps}",
        main_process_only=True,
    )

    # -------------------------------------------------------------------------------------------------- train loop
    train_history, eval_history = [], []
    # Sums and counts of each objective since the last log line, summed over processes when logged: with the
    # global-batch losses, the mean over processes of their values is the loss of the global batch.
    loss_sums = torch.zeros(2, len(LOSS_NAMES), device=accelerator.device)
    data_time = step_time = 0.0
    interval_start, interval_step = time.perf_counter(), state.global_step
    progress = tqdm(
        total=max_steps, initial=state.global_step, disable=not accelerator.is_local_main_process, desc="training"
    )
    training_start = time.perf_counter()
    model.train()
    while state.global_step < max_steps:
        train_dataloader.set_epoch(state.epoch)
        batches = (
            accelerator.skip_first_batches(train_dataloader, state.batches_in_epoch)
            if state.batches_in_epoch
            else train_dataloader
        )
        fetch_start = time.perf_counter()
        for batch in batches:
            compute_start = time.perf_counter()
            data_time += compute_start - fetch_start
            with accelerator.accumulate(model):
                output = knowledge_forward(model, batch, teacher, accelerator)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for column, name in enumerate(LOSS_NAMES):
                if output.get(name) is not None:
                    loss_sums[0, column] += output[name].detach().float()
                    loss_sums[1, column] += 1
            state.batches_in_epoch += 1
            step_time += time.perf_counter() - compute_start

            if accelerator.sync_gradients:
                scheduler.step()
                clamp_logit_scale(unwrapped)
                state.global_step += 1
                progress.update(1)

                if state.global_step % args.logging_steps == 0 or state.global_step == max_steps:
                    elapsed = time.perf_counter() - interval_start
                    sums, counts = accelerator.reduce(loss_sums, reduction="sum").tolist()
                    record = {"step": state.global_step, "epoch": state.epoch}
                    record |= {name: total / count for name, total, count in zip(LOSS_NAMES, sums, counts) if count}
                    record |= {
                        "lr/towers": scheduler.get_last_lr()[0],
                        "logit_scale": unwrapped.logit_scale.exp().item(),
                        "samples_per_second": (state.global_step - interval_step) * global_batch / elapsed,
                        "data_time_fraction": data_time / max(data_time + step_time, 1e-9),
                    }
                    train_history.append(record)
                    # The step is the tracker's own axis; trackio reserves the name for it.
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=state.global_step)
                    losses = " | ".join(f"{n} {record[n]:.4f}" for n in LOSS_NAMES if n in record)
                    logger.info(
                        f"step {state.global_step}/{max_steps} | {losses} | {record['samples_per_second']:.1f} "
                        f"samples/s | data {data_time:.1f}s vs step {step_time:.1f}s",
                        main_process_only=True,
                    )
                    loss_sums.zero_()
                    data_time = step_time = 0.0
                    interval_start, interval_step = time.perf_counter(), state.global_step

                if eval_dataloader is not None and args.eval_steps and state.global_step % args.eval_steps == 0:
                    metrics = evaluate_loss(model, eval_dataloader, teacher, accelerator, args.max_eval_batches)
                    eval_history.append({"step": state.global_step, **metrics})
                    accelerator.log(metrics, step=state.global_step)
                    logger.info(
                        f"step {state.global_step} evaluation: {format_metrics(metrics)}", main_process_only=True
                    )

                if args.checkpointing_steps and state.global_step % args.checkpointing_steps == 0:
                    path = save_checkpoint(accelerator, checkpoints_dir, state, args.checkpoints_total_limit)
                    logger.info(f"Saved {path}", main_process_only=True)
                if state.global_step >= max_steps:
                    break
            fetch_start = time.perf_counter()
        else:  # the epoch ran out: the next one starts from its first batch
            state.epoch += 1
            state.batches_in_epoch = 0
    progress.close()
    training_seconds = time.perf_counter() - training_start

    # ---------------------------------------------------------------------------------------------------- final eval
    final_metrics = {}
    if eval_history and eval_history[-1]["step"] == state.global_step:
        final_metrics = {k: v for k, v in eval_history[-1].items() if k != "step"}
    elif eval_dataloader is not None:
        final_metrics = evaluate_loss(model, eval_dataloader, teacher, accelerator, args.max_eval_batches)
        eval_history.append({"step": state.global_step, **final_metrics})
        logger.info(f"final evaluation: {format_metrics(final_metrics)}", main_process_only=True)

    # Zero-shot classification, retrieval, link and relation prediction and caption probes on each demo world, for
    # the original CLIP and the result: what continual knowledge training bought (main process; the others wait).
    benchmarks = {}
    if args.benchmark_demo_world and accelerator.is_main_process:
        unwrapped.eval()
        for spec in (spec for spec in specs if spec.kind == "demo"):
            world = build_demo_world(spec.path, seed=data_args.demo_seed, size=data_args.demo_size)
            models = {"original_clip": (teacher, CLIPProcessor.from_pretrained(clip_path))}
            models["knowledge_clip"] = (unwrapped, processor)
            benchmarks[spec.path] = benchmark_demo_world(models, world, args.seed, data_args.validation_fraction)
            logger.info(f"Demo world benchmark ({spec.path}):\n" + benchmark_table(benchmarks[spec.path]))

    # ---------------------------------------------------------------------------------------------------------- save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped.save_pretrained(args.output_dir, safe_serialization=True)
        processor.save_pretrained(args.output_dir)
        metrics = {
            "global_step": state.global_step,
            "global_batch_size": global_batch,
            "num_processes": accelerator.num_processes,
            "training_seconds": training_seconds,
            "base_model": clip_path,
            "datasets": [f"{spec.kind}:{spec.path}" for spec in specs],
            "final_evaluation": final_metrics,
            "benchmarks": benchmarks,
            "train_history": train_history,
            "eval_history": eval_history,
        }
        with open(os.path.join(args.output_dir, "metrics.json"), "w", encoding="utf-8") as file:
            json.dump(metrics, file, indent=1)
        if train_history:
            plot_training_curves(train_history, eval_history, os.path.join(args.output_dir, "training_curves.png"))
        card_kwargs = {
            "base_model": model_args.model_name_or_path,
            "license": args.license,
            "datasets": metrics["datasets"],
            "training_args": flat_config(args),
            "eval_results": card_eval_results(benchmarks),
        }
        repo_id = args.hub_model_id or f"local/{os.path.basename(os.path.abspath(args.output_dir))}"
        hub.create_model_card(unwrapped.config, repo_id, **card_kwargs).save(
            os.path.join(args.output_dir, "README.md")
        )
        if args.push_to_hub:
            hub.push_to_hub(unwrapped, processor, args.hub_model_id, **card_kwargs)
        logger.info(f"Saved the model, processor, metrics and curves to {args.output_dir}")
    accelerator.end_training()
    # The DDP wrapper is released while its gloo group still exists, then the group is torn down explicitly: left to
    # the interpreter's exit, either could hang the last process to leave.
    model, optimizer, train_dataloader = accelerator.free_memory(model, optimizer, train_dataloader)
    accelerator.state.destroy_process_group()


def available_trackers(report_to: list[str]) -> list[str]:
    """The requested trackers that are installed (tensorboard; trackio when present); `none` turns them off."""
    import importlib.util

    modules = {"tensorboard": "tensorboard", "trackio": "trackio"}
    wanted = [name for name in report_to if name != "none"]
    unknown = [name for name in wanted if name not in modules]
    if unknown:
        raise SystemExit(f"--report_to: unknown tracker(s) {unknown}; expected tensorboard, trackio or none.")
    missing = [name for name in wanted if importlib.util.find_spec(modules[name]) is None]
    if missing:
        # Plain logging: this runs before the Accelerator exists, which accelerate's logger requires.
        logging.getLogger(__name__).warning(
            f"--report_to: {missing} not installed, not logging there (pip install {' '.join(missing)})."
        )
    return [name for name in wanted if name not in missing]


def load_model_teacher_processor(path: str, model_args, relation_vocab: list[str]):
    """
    The student (`KnowledgeCLIPModel`), the frozen teacher (`CLIPModel`, or None without KD) and the processor.

    A CLIP checkpoint is continued with fresh knowledge modules over the data's relation vocabulary, and is itself
    the teacher. A Knowledge-CLIP checkpoint keeps training; its relation vocabulary must cover the data's, and its
    CLIP part at load time is the teacher.
    """
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(path)
    except OSError as error:
        raise SystemExit(
            f"--model_name_or_path {path}: cannot read a config ({str(error).splitlines()[0]})."
        ) from None
    model_type = config_dict.get("model_type")
    fusion = model_args.fusion_overrides()
    if model_args.disable_dropout:
        fusion |= {"drop_path_rate": 0.0, "attention_dropout": 0.0}
    overrides = model_args.config_overrides()
    if model_type == "clip":
        # from_pretrained reports every new knowledge weight as MISSING, which is expected here (HF_NOTES §2).
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        model = KnowledgeCLIPModel.from_clip(
            path, relation_vocab=relation_vocab, fusion_encoder_config=fusion, **overrides
        )
        transformers_logging.set_verbosity(verbosity)
        clip_processor = CLIPProcessor.from_pretrained(path)
        processor = KnowledgeCLIPProcessor(
            clip_processor.image_processor, clip_processor.tokenizer, relation_vocab=relation_vocab
        )
        teacher = CLIPModel.from_pretrained(path)
    elif model_type == "knowledge_clip":
        missing = [r for r in relation_vocab if r not in config_dict.get("relation_vocab", [])]
        if missing:
            raise SystemExit(
                f"--model_name_or_path {path}: its relation vocabulary lacks {len(missing)} relation(s) of the data "
                f"({missing[:5]}); continue from its CLIP export (save_clip_pretrained) to start a new vocabulary."
            )
        if fusion:
            raise SystemExit(
                f"--model_name_or_path {path}: a Knowledge-CLIP checkpoint keeps its fusion encoder sizes."
            )
        model = KnowledgeCLIPModel.from_pretrained(path, **overrides)
        processor = KnowledgeCLIPProcessor.from_pretrained(path)
        teacher = model.to_clip()
    else:
        raise SystemExit(
            f"--model_name_or_path {path}: expected a CLIP or Knowledge-CLIP checkpoint, got {model_type!r}."
        )
    if model.config.kd_loss_weight == 0:
        teacher = None
    return model, teacher, processor


def run_compatibility(model, accelerator, args) -> dict:
    """What a checkpoint must share with this run to be resumed exactly: weights' shapes, relations, batch layout."""
    shapes = "\n".join(f"{name}:{tuple(p.shape)}" for name, p in model.state_dict().items())
    return {
        "parameters": hashlib.sha256(shapes.encode()).hexdigest()[:16],
        "relation_vocab": list(model.config.relation_vocab),
        "batch_layout": [
            accelerator.num_processes,
            args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
        ],
    }


def flat_config(args) -> dict:
    """The training arguments as tracker hyper-parameters (TensorBoard accepts scalars and strings only)."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


def benchmark_demo_world(models: dict, world, seed: int, validation_fraction: float) -> dict[str, dict]:
    """`knowledge_clip.evaluation.evaluate_on_demo_world` of each `(model, processor)` (skipping `None` models)."""
    # Python puts this script's folder first on sys.path, where examples/evaluate.py would shadow the `evaluate`
    # library that knowledge_clip.evaluation imports.
    script_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or ".") != script_dir]
    from knowledge_clip.evaluation import evaluate_on_demo_world, flatten_results

    return {
        name: flatten_results(evaluate_on_demo_world(model, processor, world, seed, validation_fraction))
        for name, (model, processor) in models.items()
        if model is not None
    }


def card_eval_results(benchmarks: dict[str, dict]) -> dict[str, dict[str, float]]:
    """The trained model's demo-world benchmark as the model card's `{task/dataset: {metric: value}}`."""
    results = {}
    for world_path, by_model in benchmarks.items():
        world = f"demo-world-{os.path.basename(os.path.normpath(world_path))}"
        for key, value in by_model.get("knowledge_clip", {}).items():
            if not isinstance(value, float):
                continue
            parts = key.split("/")
            if parts[0] == "zero_shot":
                task = f"zero_shot_classification/{world}"
            elif parts[0] == "retrieval":
                kind = "text_retrieval" if parts[1] == "image_to_text" else "image_retrieval"
                task = f"{kind}/{world}-captions"
            elif parts[0] in ("link_prediction", "relation_prediction") and parts[-2] in ("both", parts[1]):
                task = f"{parts[0]}/{world}-{parts[1]}"
            else:
                continue
            results.setdefault(task, {})[parts[-1]] = value
    return results


def benchmark_table(results: dict[str, dict]) -> str:
    """The headline numbers of each model's demo-world benchmark, one line per metric."""
    headline = ("zero_shot/top1_accuracy", "retrieval/image_to_text/recall@1", "retrieval/text_to_image/recall@1",
                "probes/overall/accuracy", "link_prediction/conceptnet/both/mrr", "relation_prediction/visual_genome/accuracy")  # fmt: skip
    lines = []
    for metric in headline:
        values = {name: flat.get(metric) for name, flat in results.items()}
        shown = ", ".join(f"{name} {value:.3f}" for name, value in values.items() if isinstance(value, float))
        if shown:
            lines.append(f"  {metric}: {shown}")
    return "\n".join(lines)


def format_metrics(metrics: dict) -> str:
    return " | ".join(f"{name} {value:.4f}" for name, value in metrics.items())


if __name__ == "__main__":
    main(sys.argv[1:])
