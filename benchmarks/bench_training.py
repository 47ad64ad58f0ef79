"""Section 2: one Knowledge-CLIP training step against the same step computed literally, and against plain CLIP.

The literal method is the paper's equations read one term at a time (as `tests/test_losses_reference.py` checks
them): every fusion sequence of every objective is its own fusion pass, and every entity occurrence inside it its own
tower pass — no deduplication, no reuse of a tower output or of a fusion output between objectives, no batching. It
computes the same objectives with the same parameters, so its loss must equal the model's; `check_equal` measures
the largest difference of every loss and gradient before anything is timed.

The step's time split comes from one profiled step (`time_split`): named ranges are opened around the towers, the
teacher, the fusion encoder, the graph and relation heads and the loss functions through forward hooks, and every
backward node is charged to the range of the forward op that created it (the autograd sequence number links them).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from common import interleaved_medians
from torch.profiler import ProfilerActivity, profile, record_function
from transformers import CLIPModel

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.losses import KnowledgeCLIPLoss, e2e_loss, e2r_loss, g2e_loss, kd_loss
from knowledge_clip.modeling_knowledge_clip import MASKED, EntityFeatures
from knowledge_clip.training import teacher_embeddings

LOSS_NAMES = ("loss", "e2e_loss", "e2r_loss", "g2e_loss", "kd_loss")


def knowledge_losses(model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict) -> dict[str, torch.Tensor]:
    """The model's own computation: `forward(return_loss=True)` on the deduplicated batch."""
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch))
    return {name: output[name] for name in LOSS_NAMES}


class LiteralKnowledgeCLIP:
    """
    The four objectives of one batch computed term by term from the model's parameters.

    Each call of `fuse` builds one sequence `X(h, r, t)` (Eq. 3) from fresh tower passes of its own entities and runs
    the fusion encoder on that sequence alone. G2E uses one message-passing layer (the benchmark's configuration):
    `G^1(t) = mean over t's sampled in-edges (h, r, t) of [W R(h,-,t)] ⊙ Y(-,-,h)`, with every `R` and `Y` fused
    anew. KD runs both towers of the student and of the teacher once per entity.

    Args:
        model (`KnowledgeCLIPModel`): its parameters are used (and trained) exactly as in the batched step.
        teacher (`CLIPModel`): the frozen teacher.
        batch (`dict`): a collated knowledge batch.
    """

    def __init__(self, model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict):
        if model.config.graph_num_layers != 1 or model.config.clip_loss_weight:
            raise ValueError("The literal method covers one G2E layer and no clip_loss (the benchmark's config).")
        self.model, self.teacher, self.batch = model, teacher, batch
        self.num_texts = batch["entity_input_ids"].shape[0] if "entity_input_ids" in batch else 0
        self.num_entities = batch["entity_ids"].shape[0]
        self.fusion_passes = self.tower_passes = 0

    # --------------------------------------------------------------------------------------- one entity, one pass
    def _text_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return input_ids[attention_mask.bool()].unsqueeze(0)

    def entity_tokens(self, slot: int) -> torch.Tensor:
        """x_e: one tower pass over the entity alone, its token features at the fusion width."""
        self.tower_passes += 1
        model = self.model
        if slot < self.num_texts:
            ids = self._text_ids(self.batch["entity_input_ids"][slot], self.batch["entity_attention_mask"][slot])
            return model.text_to_fusion(model.text_model(input_ids=ids).last_hidden_state[0])
        pixels = self.batch["entity_pixel_values"][slot - self.num_texts].unsqueeze(0)
        hidden = model.vision_model(pixel_values=pixels).last_hidden_state
        return model.vision_to_fusion(model.vision_model.post_layernorm(hidden))[0]

    def relation_token(self, row: int) -> torch.Tensor:
        """x̄_r: one text-tower pass over the relation alone, pooled and mapped to the fusion width."""
        self.tower_passes += 1
        ids = self._text_ids(self.batch["relation_input_ids"][row], self.batch["relation_attention_mask"][row])
        return self.model.text_to_fusion(self.model.text_model(input_ids=ids).pooler_output)

    def fuse(self, head: int | None, relation: int | None, tail: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(Y, R)` of the one sequence `X(head, relation, tail)`; `None` masks a part (Eq. 6)."""
        self.fusion_passes += 1
        parts = [self.entity_tokens(slot) for slot in (head, tail) if slot is not None]
        width = max(part.shape[0] for part in parts)
        tokens = torch.stack([torch.nn.functional.pad(part, (0, 0, 0, width - part.shape[0])) for part in parts])
        empty = tokens.new_zeros(0, self.model.projection_dim)
        features = EntityFeatures(
            tokens=tokens,
            lengths=torch.tensor([part.shape[0] for part in parts]),
            relation_tokens=self.relation_token(relation) if relation is not None else tokens.new_zeros(0, width),
            text_embeds=empty,
            image_embeds=empty,
        )
        index = iter(range(len(parts)))
        head_index = next(index) if head is not None else MASKED
        tail_index = next(index) if tail is not None else MASKED
        relation_index = 0 if relation is not None else MASKED
        fused = self.model.fuse(
            features, torch.tensor([head_index]), torch.tensor([relation_index]), torch.tensor([tail_index])
        )
        return fused.pooler_output[0], fused.relation_embeds[0]

    def projected(self, clip: CLIPModel, slot: int) -> torch.Tensor:
        """The CLIP embedding of one entity by `clip` (student or teacher): one tower pass."""
        self.tower_passes += 1
        if slot < self.num_texts:
            ids = self._text_ids(self.batch["entity_input_ids"][slot], self.batch["entity_attention_mask"][slot])
            return clip.get_text_features(input_ids=ids).pooler_output[0]
        pixels = self.batch["entity_pixel_values"][slot - self.num_texts].unsqueeze(0)
        return clip.get_image_features(pixel_values=pixels).pooler_output[0]

    # ------------------------------------------------------------------------------------------------ objectives
    def losses(self) -> dict[str, torch.Tensor]:
        model, batch, config = self.model, self.batch, self.model.config
        triplets = batch["triplets"].tolist()
        entity_ids = batch["entity_ids"]
        heads, relations, tails = batch["triplets"].unbind(dim=1)
        labels = batch["relation_labels"][relations]
        tau = config.knowledge_temperature

        # E2E (Eq. 8): Y(-,-,t_i) against Y(h_i, r_i, -).
        tail_embeds = torch.stack([self.fuse(None, None, t)[0] for _, _, t in triplets])
        query_embeds = torch.stack([self.fuse(h, r, None)[0] for h, r, _ in triplets])
        losses = {
            "e2e_loss": e2e_loss(tail_embeds, query_embeds, entity_ids[heads], labels, entity_ids[tails], tau),
        }
        # E2R (Eq. 10): the relation MLP on R(h_i, -, t_i).
        relation_embeds = torch.stack([self.fuse(h, None, t)[1] for h, _, t in triplets])
        losses["e2r_loss"] = e2r_loss(model.relation_head(relation_embeds), labels)

        # G2E (Eqs. 11-13), targets as in the model: the batch's tails that have sampled in-edges.
        edges = batch["graph_edges"]
        targets = torch.unique(tails)
        targets = targets[torch.isin(targets, edges[:, 2])].tolist()
        gate = model.graph_head.layers[0]
        target_embeds, graph_embeds = [], []
        for target in targets:
            target_embeds.append(self.fuse(None, None, target)[0])
            messages = [
                gate(self.fuse(h, None, target)[1]) * self.fuse(None, None, h)[0]
                for h, _, t in edges.tolist()
                if t == target
            ]
            graph_embeds.append(torch.stack(messages).mean(dim=0))
        losses["g2e_loss"] = g2e_loss(torch.stack(target_embeds), torch.stack(graph_embeds), entity_ids[targets], tau)

        # KD: the student's and the teacher's image-text similarity distributions over the batch's entities.
        texts, images = range(self.num_texts), range(self.num_texts, self.num_entities)

        def embeds(clip: CLIPModel, slots: range) -> torch.Tensor:
            rows = [self.projected(clip, slot) for slot in slots]
            return torch.stack(rows) if rows else model.text_projection.weight.new_zeros(0, model.projection_dim)

        with torch.no_grad():
            teacher_texts, teacher_images = embeds(self.teacher, texts), embeds(self.teacher, images)
        losses["kd_loss"] = kd_loss(
            embeds(model, images),
            embeds(model, texts),
            teacher_images,
            teacher_texts,
            model.logit_scale,
            self.teacher.logit_scale.detach(),
            config.kd_temperature,
        )
        weights = {name: getattr(config, f"{name}_weight") for name in losses}
        losses["loss"] = sum(weights[name] * value for name, value in losses.items())
        return losses


def literal_losses(model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict) -> dict[str, torch.Tensor]:
    return LiteralKnowledgeCLIP(model, teacher, batch).losses()


def training_step(losses_fn, model, teacher, batch, optimizer) -> dict[str, torch.Tensor]:
    """zero_grad, the objectives by `losses_fn`, backward, optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    losses = losses_fn(model, teacher, batch)
    losses["loss"].backward()
    with record_function("optimizer"):
        optimizer.step()
    return losses


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
SPLIT_CATEGORIES = ("towers", "teacher", "fusion", "graph", "losses", "other", "optimizer")


@contextlib.contextmanager
def named_ranges(model: KnowledgeCLIPModel, teacher: CLIPModel) -> Iterator[None]:
    """
    Opens profiler ranges around the model's parts while profiling, without touching the model's code: forward
    hooks on the towers, the teacher, the fusion encoder (and its sequence builder) and the two heads, and wrappers
    around the loss functions the model calls.
    """
    groups = {
        "towers": [getattr(model, name) for name in TOWER_MODULES],
        "teacher": [getattr(teacher, name) for name in TOWER_MODULES[:4]],
        "fusion": [model.fusion_encoder, model.fusion_encoder.embeddings],
        "graph": [model.graph_head, model.relation_head],
    }
    handles, open_ranges = [], {}
    for category, modules in groups.items():
        for module in modules:

            def enter(module, args, category=category):
                open_ranges.setdefault(id(module), []).append(record_function(category).__enter__())

            def leave(module, args, output):
                open_ranges[id(module)].pop().__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]

    loss_forward = KnowledgeCLIPLoss.forward

    def timed_loss_forward(*args, **kwargs):
        with record_function("losses"):
            return loss_forward(*args, **kwargs)

    try:
        KnowledgeCLIPLoss.forward = timed_loss_forward
        yield
    finally:
        KnowledgeCLIPLoss.forward = loss_forward
        for handle in handles:
            handle.remove()


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
    with named_ranges(model, teacher), profile(activities=[ProfilerActivity.CPU]) as profiler:
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


# ------------------------------------------------------------------------------------------------------- CLIP step
def clip_step(clip: CLIPModel, batch: dict, optimizer) -> None:
    """A plain CLIP step on the batch's unique entities: both towers over all of them, CLIP's loss on the first
    min(texts, images) image-text pairs."""
    optimizer.zero_grad(set_to_none=True)
    text = clip.get_text_features(
        input_ids=batch["entity_input_ids"], attention_mask=batch["entity_attention_mask"]
    ).pooler_output
    image = clip.get_image_features(pixel_values=batch["entity_pixel_values"]).pooler_output
    pairs = min(text.shape[0], image.shape[0])
    text = torch.nn.functional.normalize(text[:pairs], dim=-1)
    image = torch.nn.functional.normalize(image[:pairs], dim=-1)
    logits = clip.logit_scale.exp() * image @ text.T
    targets = torch.arange(pairs)
    loss = torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)
    loss.backward()
    optimizer.step()


def fusion_sequence_counts(batch: dict, literal: LiteralKnowledgeCLIP) -> dict:
    """Fusion sequences and tower passes of the batched step against those the literal step ran."""
    triplets, edges = batch["triplets"], batch["graph_edges"]
    pairs = torch.unique(torch.cat([triplets[:, [0, 2]], edges[:, [0, 2]]]), dim=0).shape[0]
    queries = torch.unique(triplets[:, :2], dim=0).shape[0]
    return {
        "batched_fusion_sequences": literal.num_entities + queries + pairs,
        "batched_tower_rows": literal.num_entities + batch["relation_input_ids"].shape[0],
        "literal_fusion_passes": literal.fusion_passes,
        "literal_tower_passes": literal.tower_passes,
        "issue_estimate_3B_plus_2BK": 3 * triplets.shape[0] + 2 * edges.shape[0],
    }


@dataclasses.dataclass
class StepSetup:
    """One knowledge batch, a freshly initialised model of the world's size, its teacher and optimizer."""

    batch: dict
    model: KnowledgeCLIPModel
    teacher: CLIPModel
    optimizer: torch.optim.Optimizer

    @classmethod
    def create(cls, world, batch_size: int) -> StepSetup:
        model = world.model().train()
        teacher = model.to_clip().eval().requires_grad_(False)
        return cls(world.batch(batch_size), model, teacher, torch.optim.AdamW(model.parameters(), lr=1e-5))

    def step(self) -> dict[str, torch.Tensor]:
        """One batched training step (what the trainer runs)."""
        return training_step(knowledge_losses, self.model, self.teacher, self.batch, self.optimizer)

    def literal_step(self) -> dict[str, torch.Tensor]:
        return training_step(literal_losses, self.model, self.teacher, self.batch, self.optimizer)


def run(setup: StepSetup, reps: int, warmup: int) -> dict:
    """Times the batched step, the literal step and a plain CLIP step on one batch; returns the figures."""
    model, teacher, batch = setup.model, setup.teacher, setup.batch
    clip = model.to_clip().train()
    clip_optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-5)

    equality, literal = check_equal(model, teacher, batch)
    timings = interleaved_medians(
        {"batched": setup.step, "literal": setup.literal_step, "clip": lambda: clip_step(clip, batch, clip_optimizer)},
        reps,
        warmup,
    )
    return {
        **equality,
        "counts": fusion_sequence_counts(batch, literal),
        "step_s": timings["batched"]["median_s"],
        "literal_step_s": timings["literal"]["median_s"],
        "clip_step_s": timings["clip"]["median_s"],
        "speedup_vs_literal": timings["literal"]["median_s"] / timings["batched"]["median_s"],
        "ratio_vs_clip_step": timings["batched"]["median_s"] / timings["clip"]["median_s"],
        "time_split": time_split(model, teacher, batch, setup.optimizer),
        "times_s": {name: figures["times_s"] for name, figures in timings.items()},
    }
