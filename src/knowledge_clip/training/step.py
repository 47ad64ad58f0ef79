# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""One forward pass of the knowledge objectives, single- or multi-process, and the held-out evaluation."""

import torch
from accelerate import Accelerator

from ..losses import FeatureGather, KnowledgeCLIPLoss
from .teacher import TeacherEmbeddingCache, teacher_embeddings

__all__ = ["LOSS_NAMES", "evaluate_loss", "knowledge_forward"]

LOSS_NAMES = ("loss", "e2e_loss", "e2r_loss", "g2e_loss", "kd_loss", "clip_loss")


def knowledge_forward(
    model,
    batch: dict,
    teacher_model,
    accelerator: Accelerator,
    gather_losses: bool = True,
    with_graph_edges: bool = True,
    teacher_cache: TeacherEmbeddingCache | None = None,
):
    """
    Runs the model on a knowledge batch, then the teacher, then [`KnowledgeCLIPLoss`] (Eq. 14).

    With several processes, E2E, G2E and KD contrast against the whole global batch: `FeatureGather` concatenates
    every process's rows with their gradient (`accelerator.gather` would drop it). Every process must then run the
    same collectives, so a batch whose sampled neighbourhood came out empty still passes an empty `graph_edges`
    (otherwise one process would gather G2E rows that another never sends).

    Args:
        model: The prepared `KnowledgeCLIPModel`.
        batch (`dict`): The collator's output, on the right device.
        teacher_model (`CLIPModel` or `None`): The frozen original CLIP for the KD loss.
        accelerator (`Accelerator`): The run's accelerator.
        gather_losses (`bool`, *optional*, defaults to `True`): Contrast against the global batch (only `False` to
            demonstrate, in tests, that local-only losses differ).
        with_graph_edges (`bool`, *optional*, defaults to `True`): Whether the collator samples G2E edges; `False`
            for batches that never have any, which then compute no G2E loss in any process.
        teacher_cache ([`TeacherEmbeddingCache`], *optional*): Reuse the teacher's embeddings of entity inputs seen
            before (this process's own cache); the teacher embeds every entity of every batch when `None`.

    Returns:
        `KnowledgeCLIPOutput`: the representations, with `loss` and the individual objectives.
    """
    loss_gather = None
    if accelerator.num_processes > 1 and gather_losses:
        loss_gather = FeatureGather()
        if with_graph_edges and "graph_edges" not in batch:
            batch = {**batch, "graph_edges": batch["triplets"].new_zeros(0, 3)}
    unwrapped = accelerator.unwrap_model(model)
    output = model(**batch)
    teacher_inputs = teacher_embeddings(teacher_model, batch, teacher_cache) if teacher_model is not None else {}
    losses = KnowledgeCLIPLoss(unwrapped.config, gather=loss_gather)(
        output, unwrapped.logit_scale, **batch, **teacher_inputs
    )
    for name, value in losses.items():
        output[name] = value
    return output


@torch.no_grad()
def evaluate_loss(
    model,
    dataloader,
    teacher_model,
    accelerator: Accelerator,
    max_batches: int | None = None,
    teacher_cache: TeacherEmbeddingCache | None = None,
) -> dict:
    """
    Mean objectives over held-out batches (drawn without G2E edges), averaged over processes.

    Args:
        model: The prepared model; put back in training mode afterwards.
        dataloader: The prepared validation data loader.
        teacher_model (`CLIPModel` or `None`): The teacher.
        accelerator (`Accelerator`): The run's accelerator.
        max_batches (`int`, *optional*): Stop after this many batches per process.
        teacher_cache ([`TeacherEmbeddingCache`], *optional*): As in [`knowledge_forward`]; the held-out batches are
            the same at every evaluation, so after the first one the teacher runs on none of them.

    Returns:
        `dict[str, float]`: `eval/<name>` for every objective the batches produced.
    """
    model.eval()
    # accelerate advances a prepared loader's epoch after every pass; epoch 0 keeps the held-out batches the same.
    dataloader.set_epoch(0)
    # Sums and counts of every objective in one tensor, so that every process runs the same single reduction even
    # when some objective is missing from its batches.
    sums = torch.zeros(2, len(LOSS_NAMES), device=accelerator.device)
    for index, batch in enumerate(dataloader):
        if max_batches is not None and index >= max_batches:
            break
        output = knowledge_forward(
            model, batch, teacher_model, accelerator, with_graph_edges=False, teacher_cache=teacher_cache
        )
        for column, name in enumerate(LOSS_NAMES):
            if output.get(name) is not None:
                sums[0, column] += output[name].float()
                sums[1, column] += 1
    model.train()
    sums = accelerator.reduce(sums, reduction="sum")
    return {
        f"eval/{name}": (sums[0, column] / sums[1, column]).item()
        for column, name in enumerate(LOSS_NAMES)
        if sums[1, column] > 0
    }
