"""Section 2: one Knowledge-CLIP training step against the same step computed literally, and against plain CLIP.

The literal method is `knowledge_clip.reference.LiteralKnowledgeCLIP`, the one reference of the paper's equations
that tests/test_losses_reference.py also checks the model against: every fusion sequence of every objective is its
own fusion pass over a hand-built Eq. 3, every entity occurrence inside it its own tower pass, and the losses sums
over the batch's rows — no deduplication, no reuse of a tower output or of a fusion output between objectives, no
batching. It computes the same objectives with the same parameters, so its loss must equal the model's;
`check_equal` measures the largest difference of every loss and gradient before anything is timed.

The step's time split comes from one profiled step (`time_split`): named ranges are opened around the towers, the
fusion encoder and the graph and relation heads through forward hooks, around the loss functions, the fusion
encoder's `project_rows` and the teacher's embeddings through wrappers, and every backward node is charged to the
range of the forward op that created it (the autograd sequence number links them).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import common
import torch
from common import (
    LOSS_NAMES,
    OPTIMIZER_RANGE,
    StepSetup,
    clip_step,
    fusion_sequence_count,
    interleaved_medians,
    knowledge_losses,
    module_ranges,
    training_step,
)
from torch.profiler import ProfilerActivity, profile, record_function
from transformers import CLIPModel

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.losses import KnowledgeCLIPLoss
from knowledge_clip.reference import LiteralKnowledgeCLIP
from knowledge_clip.training import TeacherEmbeddingCache


def literal_losses(model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict) -> dict[str, torch.Tensor]:
    return LiteralKnowledgeCLIP(model, teacher, batch).losses()


def check_equal(model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict) -> tuple[dict, LiteralKnowledgeCLIP]:
    """
    Largest absolute differences of every loss and of every parameter gradient, batched vs literal; also returns the
    literal computation (which counted its passes).
    """
    literal = LiteralKnowledgeCLIP(model, teacher, batch)
    computations = {"batched": lambda: knowledge_losses(model, teacher, batch), "literal": literal.losses}
    losses, grads = {}, {}
    for name, compute in computations.items():
        model.zero_grad(set_to_none=True)
        values = compute()
        values["loss"].backward()
        losses[name] = {key: value.item() for key, value in values.items()}
        grads[name] = {key: p.grad.clone() for key, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    if grads["batched"].keys() != grads["literal"].keys():
        raise AssertionError(f"Gradients of different parameters: {grads['batched'].keys() ^ grads['literal'].keys()}")
    figures = {
        "losses_batched": losses["batched"],
        "losses_literal": losses["literal"],
        "max_abs_loss_diff": max(abs(losses["batched"][key] - losses["literal"][key]) for key in LOSS_NAMES),
        "max_abs_grad_diff": max(
            (grads["batched"][key] - grads["literal"][key]).abs().max().item() for key in grads["batched"]
        ),
    }
    return figures, literal


# ------------------------------------------------------------------------------------------------------ time split
TOWER_MODULES = (
    "text_model",
    "vision_model",
    "text_projection",
    "visual_projection",
    "text_to_fusion",
    "vision_to_fusion",
)
SPLIT_CATEGORIES = ("towers", "teacher", "fusion", "graph", "losses", "other", OPTIMIZER_RANGE)


@contextlib.contextmanager
def named_ranges(model: KnowledgeCLIPModel) -> Iterator[None]:
    """
    Opens profiler ranges around the model's parts while profiling, without touching the model's code: forward
    hooks on the towers, the fusion encoder (and its sequence builder) and the two heads, and wrappers around the
    loss functions the model calls, around the fusion encoder's `project_rows` (the first layer's projections of the
    distinct input rows, outside its forward) and around `teacher_embeddings` (the teacher runs its towers' parts,
    not the towers' forward: its last layer computes the pooled token alone).
    """
    groups = {
        "towers": [getattr(model, name) for name in TOWER_MODULES],
        "fusion": [model.fusion_encoder, model.fusion_encoder.embeddings],
        "graph": [model.graph_head, model.relation_head],
    }
    loss_forward, teacher_forward = KnowledgeCLIPLoss.forward, common.teacher_embeddings

    def timed_loss_forward(*args, **kwargs):
        with record_function("losses"):
            return loss_forward(*args, **kwargs)

    def timed_teacher_forward(*args, **kwargs):
        with record_function("teacher"):
            return teacher_forward(*args, **kwargs)

    # The first fusion layer's projections of the distinct input rows run outside the fusion encoder's forward.
    project_rows = model.fusion_encoder.project_rows

    def timed_project_rows(*args, **kwargs):
        with record_function("fusion"):
            return project_rows(*args, **kwargs)

    with module_ranges(groups):
        try:
            KnowledgeCLIPLoss.forward, common.teacher_embeddings = timed_loss_forward, timed_teacher_forward
            model.fusion_encoder.project_rows = timed_project_rows
            yield
        finally:
            KnowledgeCLIPLoss.forward, common.teacher_embeddings = loss_forward, teacher_forward
            del model.fusion_encoder.project_rows


def _outermost_backward(event) -> bool:
    """Whether a backward node's event is not nested in another (the engine runs on the thread that called it)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("autograd::engine::evaluate_function"):
            return False
        parent = parent.cpu_parent
    return True


def time_split(model, teacher, batch, optimizer) -> dict[str, float]:
    """Shares of one profiled training step by part, forward and backward together (profiler time, see above)."""
    with named_ranges(model), profile(activities=[ProfilerActivity.CPU]) as profiler:
        with record_function("step"):
            training_step(knowledge_losses, model, teacher, batch, optimizer)
    events = profiler.events()
    categories = set(SPLIT_CATEGORIES)

    def category_of(event) -> str | None:
        while event is not None:
            if event.name in categories:
                return event.name
            event = event.cpu_parent
        return None

    # Backward nodes carry the sequence number of the forward op that created them.
    range_of_sequence = {}
    for event in events:
        if event.sequence_nr >= 0 and not event.name.startswith("autograd::engine"):
            range_of_sequence.setdefault(event.sequence_nr, category_of(event))
    totals = collections.Counter()
    step_total = 0.0
    for event in events:
        if event.name == "step":
            step_total = event.cpu_time_total
        elif event.name in categories and category_of(event.cpu_parent) is None:  # outermost range only
            totals[event.name] += event.cpu_time_total
        elif event.name.startswith("autograd::engine::evaluate_function") and _outermost_backward(event):
            totals[range_of_sequence.get(event.sequence_nr) or "other"] += event.cpu_time_total
    totals["other"] += max(0.0, step_total - sum(totals.values()))
    return {category: totals[category] / step_total for category in SPLIT_CATEGORIES}


def fusion_sequence_counts(batch: dict, literal: LiteralKnowledgeCLIP) -> dict:
    """Fusion sequences and tower passes of the batched step against those the literal step ran."""
    return {
        "batched_fusion_sequences": fusion_sequence_count(batch),
        "batched_tower_rows": literal.num_entities + batch["relation_input_ids"].shape[0],
        "literal_fusion_passes": literal.fusion_passes,
        "literal_tower_passes": literal.tower_passes,
        "issue_estimate_3B_plus_2BK": 3 * batch["triplets"].shape[0] + 2 * batch["graph_edges"].shape[0],
    }


def run(setup: StepSetup, reps: int, warmup: int) -> dict:
    """Times the batched step (teacher on every entity, and with a warm teacher cache), the literal step and a plain
    CLIP step on one batch; returns the figures."""
    model, teacher, batch = setup.model, setup.teacher, setup.batch
    clip = model.to_clip().train()
    clip_optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-5)

    equality, literal = check_equal(model, teacher, batch)
    teacher_cache = TeacherEmbeddingCache()
    timings = interleaved_medians(
        {
            "batched": setup.step,
            "batched_teacher_cached": lambda: setup.teacher_cached_step(teacher_cache),
            "literal": lambda: training_step(literal_losses, model, teacher, batch, setup.optimizer),
            "clip": lambda: clip_step(clip, batch, clip_optimizer),
        },
        reps,
        warmup,
    )
    return {
        **equality,
        "counts": fusion_sequence_counts(batch, literal),
        "step_s": timings["batched"]["median_s"],
        "step_teacher_cached_s": timings["batched_teacher_cached"]["median_s"],
        "literal_step_s": timings["literal"]["median_s"],
        "clip_step_s": timings["clip"]["median_s"],
        "speedup_vs_literal": timings["literal"]["median_s"] / timings["batched"]["median_s"],
        "ratio_vs_clip_step": timings["batched"]["median_s"] / timings["clip"]["median_s"],
        "ratio_vs_clip_step_teacher_cached": timings["batched_teacher_cached"]["median_s"]
        / timings["clip"]["median_s"],
        "time_split": time_split(model, teacher, batch, setup.optimizer),
        "times_s": {name: figures["times_s"] for name, figures in timings.items()},
    }
