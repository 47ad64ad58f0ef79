# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Fine-tuning Knowledge-CLIP (Pan et al., NeurIPS 2022) on a downstream task: VQAv2, SNLI-VE, NLVR2 or Karpathy-split
image-text retrieval (COCO, Flickr30K), from a Knowledge-CLIP checkpoint (its pre-trained fusion encoder) or a plain
CLIP checkpoint (a fresh fusion encoder of the `--fusion_*` sizes: the baseline).

    accelerate launch examples/finetune.py --task vqa --model_name_or_path knowledge-clip-vit-b-32 \
        --train_file v2_OpenEnded_mscoco_train2014_questions.json \
        --annotations_file v2_mscoco_train2014_annotations.json --image_dir coco/train2014 --validation_file v2_OpenEnded_mscoco_val2014_questions.json \
        --validation_annotations_file v2_mscoco_val2014_annotations.json --validation_image_dir coco/val2014
    accelerate launch examples/finetune.py --task snli_ve --model_name_or_path DIR --train_file snli_ve_train.jsonl \
        --validation_file snli_ve_dev.jsonl --image_dir flickr30k-images
    accelerate launch examples/finetune.py --task nlvr2 --model_name_or_path DIR --train_file nlvr2/data/train.json \
        --image_dir nlvr2/images/train --validation_file nlvr2/data/dev.json --validation_image_dir nlvr2/dev
    accelerate launch examples/finetune.py --task retrieval --model_name_or_path DIR --train_file dataset_coco.json \
        --validation_file dataset_coco.json --image_dir coco --validation_split test

Every evaluation (`--eval_steps`, and at the end) scores `--validation_file` with the task's metric; the best model by
`--metric_for_best_model` is kept in `output_dir/best`, the final one in `output_dir`. See docs/downstream.md. The
recipe reads top to bottom; the reusable pieces live in `knowledge_clip.training` (`finetuning` for the task glue).
"""

import math
import os
import sys

import torch
from accelerate.logging import get_logger
from accelerate.utils import set_seed

from knowledge_clip.training import (
    TrainerState,
    TrainingConfigurationError,
    TrainingMeter,
    available_trackers,
    clamp_logit_scale,
    cosine_schedule_with_warmup,
    create_accelerator,
    find_latest_checkpoint,
    flat_config,
    format_metrics,
    load_checkpoint,
    parse_arguments,
    run_compatibility,
    save_checkpoint,
)
from knowledge_clip.training.finetuning import (
    FINETUNING_ARGUMENT_CLASSES,
    FinetuningHistory,
    RetrievalReranking,
    TaskCollator,
    TaskDataset,
    check_model_arguments,
    count_truncated_texts,
    evaluate_task,
    evaluation_dataloaders,
    finetuned_model_card,
    finetuning_parameter_groups,
    label_fingerprint,
    load_finetuning_model,
    load_task_data,
    load_test_subsets,
    push_finetuned_model,
    resolve_finetuning_license,
    save_model_atomically,
    task_forward,
    write_json,
)

logger = get_logger(__name__)

# The settings a model card lists.
CARD_SETTINGS = (
    "learning_rate",
    "new_modules_learning_rate",
    "weight_decay",
    "warmup_ratio",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "seed",
)


def main(argv=None):
    model_args, task_args, args = parse_arguments(argv, dataclass_types=FINETUNING_ARGUMENT_CLASSES)
    # Every check that needs no model or data runs first: a bad invocation fails in a second, not after loading.
    check_model_arguments(model_args)
    task_args.check_files()
    task = task_args.task
    if args.eval_steps and task_args.validation_file is None:
        raise TrainingConfigurationError("--eval_steps needs --validation_file.")
    resume_path = args.resume_from_checkpoint
    if resume_path not in (None, "latest") and not os.path.isdir(resume_path):
        raise TrainingConfigurationError(f"--resume_from_checkpoint {resume_path}: no such directory.")
    if args.push_to_hub and not args.hub_model_id:
        raise TrainingConfigurationError("--push_to_hub needs --hub_model_id (namespace/name).")
    license = resolve_finetuning_license(args.license, model_args.model_name_or_path)
    base_model = None if os.path.isdir(model_args.model_name_or_path) else model_args.model_name_or_path

    # --------------------------------------------------------------------------------------------------- accelerator
    trackers = available_trackers(args.report_to)
    os.makedirs(args.output_dir, exist_ok=True)
    # Retrieval trains every parameter it does not freeze; the task models leave some without gradient (the
    # pre-training heads), which DDP must be told about.
    accelerator = create_accelerator(
        args.output_dir,
        args.mixed_precision,
        args.gradient_accumulation_steps,
        trackers,
        find_unused_parameters=task != "retrieval",
    )

    # ---------------------------------------------------------------------------------------------------------- data
    train_data = load_task_data(task_args, "train")
    # VQA validation and test questions are scored against the training answer vocabulary.
    eval_data, test_data, test_subsets = None, None, None
    if task_args.validation_file is not None:
        eval_data = load_task_data(task_args, "validation", labels=train_data.labels or None)
    if task_args.test_file is not None:
        test_data = load_task_data(task_args, "test", labels=train_data.labels or None)
    if task_args.test_subsets_file is not None:
        test_subsets = load_test_subsets(task_args.test_subsets_file)
    # (The loaders log their own reports: records read, loaded and skipped, with examples of the skipped ones.)
    for name, data in (("train", train_data), ("validation", eval_data), ("test", test_data)):
        if data is not None:
            images = f" of {len(data.gallery)} images" if task == "retrieval" else ""
            unit = "captions" if task == "retrieval" else "examples"
            logger.info(f"{name}: {len(data.records)} {unit}{images}", main_process_only=True)
    if task == "vqa":
        logger.info(
            f"Answer vocabulary: {len(train_data.labels)} answers; {train_data.num_outside_vocabulary} training human "
            "answers fall outside it (scored 0)",
            main_process_only=True,
        )

    # --------------------------------------------------------------------------------------------------------- model
    set_seed(args.seed)  # before the new modules are initialised
    source = f"the {'answer vocabulary' if task == 'vqa' else 'labels'} of --train_file {task_args.train_file}"
    model, processor, model_info = load_finetuning_model(
        task, model_args, train_data.labels, source, task_args.task_model_settings()
    )
    logger.info(
        f"{type(model).__name__} from the {model_info['checkpoint_type']} checkpoint {model_args.model_name_or_path}; "
        f"new modules: {', '.join(model_info['new_modules']) or 'none'}",
        main_process_only=True,
    )
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    max_length = model.config.text_config.max_position_embeddings
    truncated = {}
    for name, data in (("train", train_data), ("validation", eval_data), ("test", test_data)):
        if data is not None:
            truncated[name] = count_truncated_texts(processor.tokenizer, data.texts, max_length)
            logger.info(
                f"{name}: {truncated[name]} of {len(data.texts)} texts exceed the text tower's {max_length} positions "
                "and are truncated",
                main_process_only=True,
            )

    num_labels = len(train_data.labels) if task == "vqa" else None
    collator = TaskCollator(processor, task, max_length, num_labels)
    reranking = (
        RetrievalReranking.from_processor(processor, task_args.rerank_top_k) if task_args.rerank_top_k else None
    )
    # The dataset draws its own order per epoch (set_epoch), so the loader reads it sequentially; its own generator
    # keeps iterator creation from consuming the global RNG, which would shift dropout after a resume.
    train_dataloader = torch.utils.data.DataLoader(
        TaskDataset(train_data.records, train_data.image_dir, shuffle=True, seed=args.seed),
        batch_size=args.per_device_train_batch_size,
        collate_fn=collator,
        num_workers=task_args.dataloader_num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    eval_dataloaders, test_dataloaders = [
        evaluation_dataloaders(
            data, task, collator, args.per_device_eval_batch_size, task_args.dataloader_num_workers, args.seed
        )
        for data in (eval_data, test_data)
    ]

    # ---------------------------------------------------------------------------------------------------- optimizer
    global_batch = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    if len(train_data.records) < global_batch:
        raise TrainingConfigurationError(
            f"--train_file {task_args.train_file}: {len(train_data.records)} examples, fewer than one global batch "
            f"({global_batch}); lower --per_device_train_batch_size."
        )
    groups = finetuning_parameter_groups(
        model, args.learning_rate, args.new_modules_learning_rate, args.weight_decay, model_info["new_parameters"]
    )
    optimizer = torch.optim.AdamW(groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    eval_dataloaders = {name: accelerator.prepare(loader) for name, loader in eval_dataloaders.items()}
    test_dataloaders = {name: accelerator.prepare(loader) for name, loader in test_dataloaders.items()}
    steps_per_epoch = max(1, len(train_dataloader) // args.gradient_accumulation_steps)
    max_steps = args.max_steps or math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else round(args.warmup_ratio * max_steps)
    # Not prepared: accelerate would step a prepared scheduler once per process. Registered, so it is checkpointed,
    # and so is the history: a resumed run continues the best-model decisions and the logged records.
    scheduler = cosine_schedule_with_warmup(optimizer, warmup_steps, max_steps)
    history = FinetuningHistory(task_args.metric_for_best_model)
    accelerator.register_for_checkpointing(scheduler, history)
    unwrapped = accelerator.unwrap_model(model)

    # -------------------------------------------------------------------------------------------------------- resume
    checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
    compatibility = run_compatibility(
        unwrapped, accelerator.num_processes, args.per_device_train_batch_size, args.gradient_accumulation_steps
    ) | {"task": task, "labels": label_fingerprint(train_data.labels)}
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
        config = flat_config(args) | flat_config(task_args) | flat_config(model_args)
        accelerator.init_trackers(os.path.basename(os.path.abspath(args.output_dir)), config=config)
    logger.info(
        f"--task {task}: {max_steps} steps of {global_batch} examples ({args.per_device_train_batch_size} per process "
        f"x {accelerator.num_processes} processes x {args.gradient_accumulation_steps} accumulation), "
        f"{steps_per_epoch} steps per epoch, warm-up {warmup_steps}",
        main_process_only=True,
    )

    best_dir = os.path.join(args.output_dir, "best")
    repo_id = args.hub_model_id or f"local/{os.path.basename(os.path.abspath(args.output_dir))}"
    card_kwargs = {
        "license": license,
        "base_model": base_model,
        "dataset_name": task_args.dataset_name or _dataset_name(task, task_args.train_file),
        "training_args": {name: getattr(args, name) for name in CARD_SETTINGS if getattr(args, name) is not None},
    }

    def evaluate(step):
        """Evaluates, logs, and keeps the model as `best` when the metric improved (main process)."""
        metrics = evaluate_task(
            model, eval_dataloaders, task, eval_data, accelerator, args.max_eval_batches, reranking=reranking
        )
        model.train()
        if metrics is None:  # not the main process
            return None
        accelerator.log({f"eval/{name}": value for name, value in metrics.items()}, step=step)
        improved = history.update(step, metrics)
        logger.info(f"step {step} evaluation: {format_metrics(metrics)}{' (best)' if improved else ''}")
        if improved:
            card = finetuned_model_card(task, unwrapped.config, repo_id, metrics=metrics, **card_kwargs)
            save_model_atomically(unwrapped, processor, best_dir, card)
        return metrics

    # -------------------------------------------------------------------------------------------------- train loop
    meter = TrainingMeter(accelerator, ("loss",), max_steps, global_batch, initial_step=state.global_step)
    group_names = [group["name"] for group in optimizer.param_groups]
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
                output = task_forward(model, batch, task, accelerator)
                accelerator.backward(output["loss"])
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            meter.add_losses(output)
            state.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            if task == "retrieval":
                clamp_logit_scale(unwrapped)
            state.global_step += 1
            meter.step()

            if state.global_step % args.logging_steps == 0 or state.global_step == max_steps:
                rates = dict(zip(group_names, scheduler.get_last_lr()))
                values = {
                    f"lr/{part}": next(rate for name, rate in rates.items() if name.startswith(part))
                    for part in ("pretrained", "new_modules")
                    if any(name.startswith(part) for name in rates)
                }
                history.train_history.append(meter.log(state.global_step, state.epoch, values))
            if eval_dataloaders and args.eval_steps and state.global_step % args.eval_steps == 0:
                evaluate(state.global_step)
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
    # Decided from the step alone, the same in every process (only the main process holds the history): every
    # process must take part in the evaluation's collectives.
    final_metrics = {}
    if eval_dataloaders:
        if args.eval_steps and state.global_step % args.eval_steps == 0:
            final_metrics = {k: v for k, v in (history.eval_history or [{}])[-1].items() if k != "step"}
        else:
            final_metrics = evaluate(state.global_step) or {}

    # ---------------------------------------------------------------------------------------------------------- save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped.save_pretrained(args.output_dir, safe_serialization=True)
    has_best = os.path.isdir(best_dir) and bool(eval_dataloaders)

    # ---------------------------------------------------------------------------------------------------------- test
    # Scored once, by the model that validation chose (every process loads it: all take part in the evaluation).
    test_metrics = None
    if test_dataloaders:
        if has_best:
            unwrapped.load_state_dict(type(unwrapped).from_pretrained(best_dir).state_dict())
        test_metrics = evaluate_task(
            model, test_dataloaders, task, test_data, accelerator, args.max_eval_batches, test_subsets, reranking
        )
        if test_metrics is not None:
            scored = f"the best model (step {history.best_step})" if has_best else "the final model"
            logger.info(f"test ({scored}): {format_metrics(test_metrics)}")
            write_json(os.path.join(args.output_dir, "test_results.json"), test_metrics)
    if accelerator.is_main_process:
        processor.save_pretrained(args.output_dir)
        processor.image_processor.save_pretrained(args.output_dir)
        card = finetuned_model_card(task, unwrapped.config, repo_id, metrics=final_metrics, **card_kwargs)
        card.save(os.path.join(args.output_dir, "README.md"))
        metrics = {
            "task": task,
            "global_step": state.global_step,
            "global_batch_size": global_batch,
            "num_processes": accelerator.num_processes,
            "training_seconds": training_seconds,
            "base_model": model_args.model_name_or_path,
            "checkpoint_type": model_info["checkpoint_type"],
            "new_modules": model_info["new_modules"],
            "num_examples": {
                "train": len(train_data.records),
                "validation": len(eval_data.records) if eval_data else 0,
                "test": len(test_data.records) if test_data else 0,
            },
            "data_reports": {
                "train": train_data.report,
                "validation": eval_data.report if eval_data else None,
                "test": test_data.report if test_data else None,
            },
            "truncated_texts": truncated,
            "num_labels": len(train_data.labels),
            "metric_for_best_model": history.metric,
            "best_metric": history.best_metric,
            "best_step": history.best_step,
            "best_model_dir": best_dir if has_best else None,
            "final_evaluation": final_metrics,
            "test_evaluation": test_metrics,
            "test_model": ("best" if has_best else "final") if test_metrics is not None else None,
            "train_history": history.train_history,
            "eval_history": history.eval_history,
        }
        if task == "vqa":
            metrics["num_outside_vocabulary"] = train_data.num_outside_vocabulary
        write_json(os.path.join(args.output_dir, "metrics.json"), metrics)
        if args.push_to_hub:
            # The best model is what is published; without evaluations, the final one.
            published = best_dir if has_best else args.output_dir
            best_metrics = next((e for e in history.eval_history if e["step"] == history.best_step), final_metrics)
            best_metrics = {k: v for k, v in best_metrics.items() if k != "step"}
            urls = push_finetuned_model(task, published, processor, args.hub_model_id, card_kwargs, best_metrics)
            logger.info(f"Pushed {published}: {', '.join(urls.values())}")
        logger.info(f"Saved the model, processor, card and metrics to {args.output_dir}")
    # Every process tears down together, DDP before its gloo group (docs/training.md, "Ending a run").
    accelerator.wait_for_everyone()
    model, optimizer, train_dataloader = accelerator.free_memory(model, optimizer, train_dataloader)
    accelerator.end_training()  # finishes the trackers and destroys the process group


def _dataset_name(task: str, train_file: str) -> str | None:
    if task != "retrieval":
        return None
    name = os.path.splitext(os.path.basename(train_file))[0]
    return name.removeprefix("dataset_") or name


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except TrainingConfigurationError as error:  # a bad invocation: its one-line message, no traceback
        raise SystemExit(str(error)) from None
