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

import json
import math
import os
import sys

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from transformers import CLIPProcessor

from knowledge_clip import hub
from knowledge_clip.data.collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from knowledge_clip.data.demo_world import build_demo_world
from knowledge_clip.evaluation import (
    demo_world_card_results,
    demo_world_headline_table,
    evaluate_on_demo_world,
    flatten_results,
)
from knowledge_clip.training import (
    LOSS_NAMES,
    TeacherEmbeddingCache,
    TrainerState,
    TrainingConfigurationError,
    TrainingMeter,
    available_trackers,
    clamp_logit_scale,
    cosine_schedule_with_warmup,
    create_accelerator,
    evaluate_loss,
    find_latest_checkpoint,
    flat_config,
    format_metrics,
    knowledge_forward,
    load_checkpoint,
    load_mixture,
    load_pretraining_models,
    parameter_groups,
    parse_arguments,
    parse_dataset_spec,
    plot_training_curves,
    run_compatibility,
    save_checkpoint,
    train_stage0_clip,
)

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
        raise TrainingConfigurationError(f"--resume_from_checkpoint {resume_path}: no such directory.")
    if args.push_to_hub and not args.hub_model_id:
        raise TrainingConfigurationError("--push_to_hub needs --hub_model_id (namespace/name).")
    try:  # the model card needs a license: fail now rather than after training
        hub.resolve_license(args.license, model_args.model_name_or_path)
    except ValueError as error:
        raise TrainingConfigurationError(f"--license: {error}") from None

    # --------------------------------------------------------------------------------------------------- accelerator
    trackers = available_trackers(args.report_to)
    os.makedirs(args.output_dir, exist_ok=True)
    accelerator = create_accelerator(args.output_dir, args.mixed_precision, args.gradient_accumulation_steps, trackers)

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
    model, teacher, processor = load_pretraining_models(clip_path, model_args, mixture.relation_vocab)
    teacher_path = model_args.teacher_name_or_path or clip_path
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    if teacher is not None:
        # Frozen and never prepared, so never wrapped, synchronised or saved in a checkpoint. Every process loads it
        # from the same files, so every process distils from the same weights.
        teacher.to(accelerator.device)
        logger.info(f"KD teacher: the CLIP part of {teacher_path}", main_process_only=True)
    # The frozen teacher always embeds an input alike, so each process keeps the embeddings of the entity inputs it
    # has seen (in memory only: a resumed run recomputes them).
    teacher_cache_size = 65536 if model_args.teacher_cache_size is None else model_args.teacher_cache_size
    teacher_cache = TeacherEmbeddingCache(teacher_cache_size) if teacher is not None and teacher_cache_size else None

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
    compatibility = run_compatibility(
        unwrapped, accelerator.num_processes, args.per_device_train_batch_size, args.gradient_accumulation_steps
    )
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
    meter = TrainingMeter(accelerator, LOSS_NAMES, max_steps, global_batch, initial_step=state.global_step)
    model.train()
    while state.global_step < max_steps:
        train_dataloader.set_epoch(state.epoch)
        batches = (
            accelerator.skip_first_batches(train_dataloader, state.batches_in_epoch)
            if state.batches_in_epoch
            else train_dataloader
        )
        for batch in meter.timed(batches):
            with accelerator.accumulate(model):
                output = knowledge_forward(model, batch, teacher, accelerator, teacher_cache=teacher_cache)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            meter.add_losses(output)
            state.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            clamp_logit_scale(unwrapped)
            state.global_step += 1
            meter.step()

            if state.global_step % args.logging_steps == 0 or state.global_step == max_steps:
                values = {"lr/towers": scheduler.get_last_lr()[0], "logit_scale": unwrapped.logit_scale.exp().item()}
                train_history.append(meter.log(state.global_step, state.epoch, values))
            if eval_dataloader is not None and args.eval_steps and state.global_step % args.eval_steps == 0:
                metrics = evaluate_loss(
                    model, eval_dataloader, teacher, accelerator, args.max_eval_batches, teacher_cache
                )
                eval_history.append({"step": state.global_step, **metrics})
                accelerator.log(metrics, step=state.global_step)
                logger.info(f"step {state.global_step} evaluation: {format_metrics(metrics)}", main_process_only=True)
            if args.checkpointing_steps and state.global_step % args.checkpointing_steps == 0:
                path = save_checkpoint(accelerator, checkpoints_dir, state, args.checkpoints_total_limit)
                logger.info(f"Saved {path}", main_process_only=True)
            if state.global_step >= max_steps:
                break
        else:  # the epoch ran out: the next one starts from its first batch
            state.epoch += 1
            state.batches_in_epoch = 0
    meter.close()
    training_seconds = meter.elapsed_seconds

    # ---------------------------------------------------------------------------------------------------- final eval
    final_metrics = {}
    if eval_history and eval_history[-1]["step"] == state.global_step:
        final_metrics = {k: v for k, v in eval_history[-1].items() if k != "step"}
    elif eval_dataloader is not None:
        final_metrics = evaluate_loss(
            model, eval_dataloader, teacher, accelerator, args.max_eval_batches, teacher_cache
        )
        eval_history.append({"step": state.global_step, **final_metrics})
        logger.info(f"final evaluation: {format_metrics(final_metrics)}", main_process_only=True)

    # Zero-shot classification, retrieval, link and relation prediction and caption probes on each demo world, for
    # the original CLIP (the teacher) and the result: what continual knowledge training bought (main process; the
    # others wait).
    benchmarks = {}
    if args.benchmark_demo_world and accelerator.is_main_process:
        unwrapped.eval()
        models = {"knowledge_clip": (unwrapped, processor)}
        if teacher is not None:
            models = {"original_clip": (teacher, CLIPProcessor.from_pretrained(teacher_path)), **models}
        for spec in (spec for spec in specs if spec.kind == "demo"):
            world = build_demo_world(spec.path, seed=data_args.demo_seed, size=data_args.demo_size)
            benchmarks[spec.path] = {
                name: flatten_results(
                    evaluate_on_demo_world(model, model_processor, world, args.seed, data_args.validation_fraction)
                )
                for name, (model, model_processor) in models.items()
            }
            logger.info(f"Demo world benchmark ({spec.path}):\n" + demo_world_headline_table(benchmarks[spec.path]))

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
            # A Hub source is named by its repository id, which the model card's `datasets` links to.
            "datasets": [spec.path if spec.kind == "hub" else f"{spec.kind}:{spec.path}" for spec in specs],
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
            "eval_results": demo_world_card_results(benchmarks, "knowledge_clip"),
        }
        repo_id = args.hub_model_id or f"local/{os.path.basename(os.path.abspath(args.output_dir))}"
        hub.create_model_card(unwrapped.config, repo_id, **card_kwargs).save(
            os.path.join(args.output_dir, "README.md")
        )
        if args.push_to_hub:
            hub.push_to_hub(unwrapped, processor, args.hub_model_id, **card_kwargs)
        logger.info(f"Saved the model, processor, metrics and curves to {args.output_dir}")
    # Every process tears down together, DDP before its gloo group (docs/training.md, "Ending a run").
    accelerator.wait_for_everyone()
    model, optimizer, train_dataloader = accelerator.free_memory(model, optimizer, train_dataloader)
    accelerator.end_training()  # finishes the trackers and destroys the process group


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except TrainingConfigurationError as error:  # a bad invocation: its one-line message, no traceback
        raise SystemExit(str(error)) from None
