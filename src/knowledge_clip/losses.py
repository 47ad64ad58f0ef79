# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The training objectives of Knowledge-CLIP (Pan et al., 2022): one function per term, and `KnowledgeCLIPLoss`, which
owns their weighted sum (Eq. 14) and is shared by `KnowledgeCLIPModel.forward(return_loss=True)` and the trainer.

Distributed behaviour is an argument, as in open_clip's `loss.py`: pass `gather=FeatureGather()` and each process
contrasts its local rows against the rows of every process (gathered *with* gradient), with false negatives masked
by ids gathered alongside. Every loss returns `sum over local rows * world_size / global rows`, so that the average
DDP takes over processes, of values and of gradients, equals the loss of one process on the whole global batch.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed._functional_collectives import all_gather_single

__all__ = [
    "FeatureGather",
    "KnowledgeCLIPLoss",
    "clip_loss",
    "e2e_loss",
    "e2r_loss",
    "g2e_loss",
    "info_nce_loss",
    "kd_loss",
]


class FeatureGather:
    """
    Concatenates a tensor's rows from every process of a `torch.distributed` group, keeping the gradient.

    Processes may hold different numbers of rows (e.g. the unique entities of a batch): rows are padded to the largest
    count for the collective and cut back afterwards. The backward pass of torch's functional `all_gather_single`
    (what torch 2.13 recommends in place of the deprecated `torch.distributed.nn.functional.all_gather`) sums the
    gradients every process computes for a row into the process that owns it; DDP's averaging then yields the
    gradient of the global-batch loss (see the module docstring). `accelerator.gather` would not do: it returns a
    tensor without gradient.

    Args:
        group (`torch.distributed.ProcessGroup`, *optional*):
            The group to gather over; the default group when `None`.
    """

    def __init__(self, group=None):
        self.group = group

    @property
    def world_size(self) -> int:
        return torch.distributed.get_world_size(self.group)

    @property
    def rank(self) -> int:
        return torch.distributed.get_rank(self.group)

    def __call__(self, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
        """
        Returns:
            `(gathered, offset)`: the rows of all processes in rank order, and the index of this process's first row.
        """
        count = torch.tensor([tensor.shape[0]], device=tensor.device)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        torch.distributed.all_gather(counts, count, group=self.group)
        counts = [int(c) for c in counts]
        padded = F.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, max(counts) - tensor.shape[0]))
        pieces = all_gather_single(padded, 0, self.group or torch.distributed.group.WORLD).chunk(self.world_size)
        gathered = torch.cat([piece[:n] for piece, n in zip(pieces, counts)])
        return gathered, sum(counts[: self.rank])


def _gather(tensor: torch.Tensor, gather: FeatureGather | None) -> tuple[torch.Tensor, int]:
    return (tensor, 0) if gather is None else gather(tensor)


def _world_size(gather: FeatureGather | None) -> int:
    return 1 if gather is None else gather.world_size


def _rows_equal(local_key: torch.Tensor, all_key: torch.Tensor) -> torch.Tensor:
    """`(n_local, n_all)` boolean: row i of `local_key` equals row j of `all_key` (every column, for 2-D keys)."""
    equal = local_key.unsqueeze(1) == all_key.unsqueeze(0)
    return equal.all(dim=-1) if equal.dim() == 3 else equal


def info_nce_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    match_keys: Sequence[torch.Tensor],
    scale: torch.Tensor | float,
    gather: FeatureGather | None = None,
) -> torch.Tensor:
    """
    Symmetric InfoNCE between row-aligned pairs `(x[i], y[i])`: each x row must pick its y among all y rows of the
    (global) batch, and each y row its x; cosine similarity times `scale`.

    A pair that is another row's correct answer too is not its negative: column j is masked out of row i (j != i)
    when the rows agree on any of `match_keys` (e.g. the same tail entity). Without this, a batch holding two triplets
    with the same tail would push apart representations that the objective wants equal.

    Args:
        x, y (`torch.Tensor` of shape `(n, dim)`):
            The paired representations of this process.
        match_keys (sequence of `torch.Tensor` of shape `(n,)` or `(n, k)`):
            Ids identifying what makes two rows interchangeable; a 2-D key matches when all its columns match.
        scale (`float` or scalar `torch.Tensor`):
            Multiplier of the cosine similarities (1/τ, or CLIP's `logit_scale.exp()`).
        gather (`FeatureGather`, *optional*):
            Contrast against the rows of every process.

    Returns:
        Scalar `torch.Tensor`: the mean over global rows of the two directions' cross-entropies (see module docstring
        for the multi-process normalisation).
    """
    x = F.normalize(x, dim=-1)
    y = F.normalize(y, dim=-1)
    x_all, offset = _gather(x, gather)
    y_all, _ = _gather(y, gather)
    if x_all.shape[0] == 0:
        return (x.sum() + y.sum()) * 0.0
    targets = torch.arange(x.shape[0], device=x.device) + offset
    false_negatives = torch.zeros(x.shape[0], x_all.shape[0], dtype=torch.bool, device=x.device)
    for key in match_keys:
        false_negatives |= _rows_equal(key, _gather(key, gather)[0])
    false_negatives[torch.arange(x.shape[0], device=x.device), targets] = False

    logits_x_to_y = (scale * x @ y_all.T).masked_fill(false_negatives, float("-inf"))
    logits_y_to_x = (scale * y @ x_all.T).masked_fill(false_negatives, float("-inf"))
    row_losses = F.cross_entropy(logits_x_to_y, targets, reduction="none") + F.cross_entropy(
        logits_y_to_x, targets, reduction="none"
    )
    return row_losses.sum() / 2 * _world_size(gather) / x_all.shape[0]


def e2e_loss(
    tail_embeds: torch.Tensor,
    query_embeds: torch.Tensor,
    head_ids: torch.Tensor,
    relation_ids: torch.Tensor,
    tail_ids: torch.Tensor,
    temperature: float,
    gather: FeatureGather | None = None,
) -> torch.Tensor:
    """
    Entity-entity objective (Eq. 8): InfoNCE between the entity representation `Y(-,-,t_i)` of each triplet's tail
    and the query representation `Y(h_i, r_i, -)` of its head and relation, over the batch, temperature τ.

    Two triplets with the same tail, or the same (head, relation), answer each other and are not negatives.

    Args:
        tail_embeds (`torch.Tensor` of shape `(batch_size, fusion_dim)`): `Y(-,-,t_i)`.
        query_embeds (`torch.Tensor` of shape `(batch_size, fusion_dim)`): `Y(h_i, r_i, -)`.
        head_ids, relation_ids, tail_ids (`torch.Tensor` of shape `(batch_size,)`): KG ids of each triplet's parts.
        temperature (`float`): τ.
        gather (`FeatureGather`, *optional*): contrast against the global batch.
    """
    query_keys = torch.stack([head_ids, relation_ids], dim=-1)
    return info_nce_loss(tail_embeds, query_embeds, [tail_ids, query_keys], 1.0 / temperature, gather)


def e2r_loss(
    relation_logits: torch.Tensor, relation_labels: torch.Tensor, gather: FeatureGather | None = None
) -> torch.Tensor:
    """
    Entity-relation objective (Eq. 10): cross-entropy of the relation classifier applied to `R(h_i, -, t_i)`.

    Args:
        relation_logits (`torch.Tensor` of shape `(batch_size, num_relations)`): the classifier's output.
        relation_labels (`torch.Tensor` of shape `(batch_size,)`): index of each triplet's relation in the vocabulary.
        gather (`FeatureGather`, *optional*): only used to count the global rows.
    """
    global_rows = _gather(relation_labels, gather)[0].shape[0]
    if global_rows == 0:
        return relation_logits.sum() * 0.0
    row_losses = F.cross_entropy(relation_logits, relation_labels, reduction="sum")
    return row_losses * _world_size(gather) / global_rows


def g2e_loss(
    entity_embeds: torch.Tensor,
    graph_embeds: torch.Tensor,
    entity_ids: torch.Tensor,
    temperature: float,
    gather: FeatureGather | None = None,
) -> torch.Tensor:
    """
    Graph-entity objective (Eq. 13): InfoNCE between the entity representation `Y(-,-,t)` and the graph
    representation `G^L(t)` aggregated from t's sampled in-neighbourhood (Eqs. 11-12), over the target entities of
    the batch. The same entity targeted by two processes is not its own negative.

    Args:
        entity_embeds (`torch.Tensor` of shape `(num_targets, fusion_dim)`): `Y(-,-,t)`.
        graph_embeds (`torch.Tensor` of shape `(num_targets, fusion_dim)`): `G^L(t)`.
        entity_ids (`torch.Tensor` of shape `(num_targets,)`): KG ids of the targets.
        temperature (`float`): τ.
        gather (`FeatureGather`, *optional*): contrast against the global batch.
    """
    return info_nce_loss(entity_embeds, graph_embeds, [entity_ids], 1.0 / temperature, gather)


def clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    image_ids: torch.Tensor,
    text_ids: torch.Tensor,
    logit_scale: torch.Tensor,
    gather: FeatureGather | None = None,
) -> torch.Tensor:
    """
    CLIP's image-text contrastive loss on paired embeddings, with the same false-negative masking (an image's other
    captions are not its negatives).

    Args:
        image_embeds, text_embeds (`torch.Tensor` of shape `(num_pairs, projection_dim)`): the towers' projected
            embeddings of each pair.
        image_ids, text_ids (`torch.Tensor` of shape `(num_pairs,)`): their KG ids.
        logit_scale (`torch.Tensor`): the model's log inverse temperature (exponentiated here).
        gather (`FeatureGather`, *optional*): contrast against the global batch.
    """
    return info_nce_loss(image_embeds, text_embeds, [image_ids, text_ids], logit_scale.exp(), gather)


def kd_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    teacher_image_embeds: torch.Tensor,
    teacher_text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    teacher_logit_scale: torch.Tensor | float,
    temperature: float = 1.0,
    gather: FeatureGather | None = None,
) -> torch.Tensor:
    """
    Distillation against the frozen original CLIP (the paper's "KD" term, our reading of it): the KL divergence
    `KL(teacher || student)` between the image-to-text similarity distributions (softmax over the batch's texts, for
    each image) and the text-to-image ones (softmax over the batch's images, for each text), each model using its own
    `logit_scale`, divided by `temperature` and multiplied by `temperature**2` as in Hinton et al. The result is the
    mean over all rows of both directions; 0 when the batch lacks images or texts.

    Args:
        image_embeds, text_embeds (`torch.Tensor` of shape `(num_images, dim)` / `(num_texts, dim)`): the student's
            projected embeddings of the batch's image and text entities.
        teacher_image_embeds, teacher_text_embeds (`torch.Tensor`): the teacher's, same rows.
        logit_scale (`torch.Tensor`): the student's log inverse temperature.
        teacher_logit_scale (`torch.Tensor` or `float`): the teacher's.
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature.
        gather (`FeatureGather`, *optional*): distributions over the global batch.
    """
    student_image, student_text = F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)
    teacher_image = F.normalize(teacher_image_embeds.detach(), dim=-1)
    teacher_text = F.normalize(teacher_text_embeds.detach(), dim=-1)
    student_image_all, _ = _gather(student_image, gather)
    student_text_all, _ = _gather(student_text, gather)
    teacher_image_all, _ = _gather(teacher_image, gather)
    teacher_text_all, _ = _gather(teacher_text, gather)
    global_rows = student_image_all.shape[0] + student_text_all.shape[0]
    if student_image_all.shape[0] == 0 or student_text_all.shape[0] == 0:
        return (image_embeds.sum() + text_embeds.sum()) * 0.0

    student_scale = logit_scale.exp() / temperature
    teacher_scale = torch.as_tensor(teacher_logit_scale, device=image_embeds.device).exp() / temperature

    def summed_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        teacher_log_probs = teacher_logits.log_softmax(dim=-1)
        kl = teacher_log_probs.exp() * (teacher_log_probs - student_logits.log_softmax(dim=-1))
        return kl.sum()

    image_to_text = summed_kl(
        student_scale * student_image @ student_text_all.T, teacher_scale * teacher_image @ teacher_text_all.T
    )
    text_to_image = summed_kl(
        student_scale * student_text @ student_image_all.T, teacher_scale * teacher_text @ teacher_image_all.T
    )
    return (image_to_text + text_to_image) * temperature**2 * _world_size(gather) / global_rows


class KnowledgeCLIPLoss(nn.Module):
    """
    The Knowledge-CLIP objective (Eq. 14): `L = L_E2E + L_E2R + L_G2E + L_KD`, each term weighted by the config, plus
    CLIP's own loss on the batch's image-text pairs when `config.clip_loss_weight > 0`.

    It reads the representations that `KnowledgeCLIPModel.forward` returns for a knowledge batch; distributed
    behaviour is fixed here, once, as in open_clip's `ClipLoss`: with `gather=FeatureGather()` every contrastive term
    runs against the global batch of all processes.

    Args:
        config ([`KnowledgeCLIPConfig`]): Supplies the loss weights, `knowledge_temperature`, `kd_temperature` and
            `num_relations`.
        gather (`FeatureGather`, *optional*): Contrast against the rows of every process; `None` for one process.
    """

    def __init__(self, config, gather: FeatureGather | None = None):
        super().__init__()
        self.weights = {
            "e2e_loss": config.e2e_loss_weight,
            "e2r_loss": config.e2r_loss_weight,
            "g2e_loss": config.g2e_loss_weight,
            "kd_loss": config.kd_loss_weight,
            "clip_loss": config.clip_loss_weight,
        }
        self.knowledge_temperature = config.knowledge_temperature
        self.kd_temperature = config.kd_temperature
        self.num_relations = config.num_relations
        self.gather = gather

    def forward(
        self,
        output,
        logit_scale: torch.Tensor,
        triplets: torch.Tensor,
        relation_labels: torch.Tensor,
        entity_ids: torch.Tensor | None = None,
        graph_edges: torch.Tensor | None = None,
        teacher_text_embeds: torch.Tensor | None = None,
        teacher_image_embeds: torch.Tensor | None = None,
        teacher_logit_scale: torch.Tensor | float | None = None,
        **unused_batch_fields,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            output ([`KnowledgeCLIPOutput`]): The model's output on the knowledge batch.
            logit_scale (`torch.Tensor`): The model's `logit_scale` parameter (KD and CLIP terms).
            triplets (`torch.LongTensor` of shape `(num_triplets, 3)`): `(head slot, relation row, tail slot)`.
            relation_labels (`torch.LongTensor` of shape `(num_batch_relations,)`): vocabulary index of each relation row.
            entity_ids (`torch.LongTensor` of shape `(num_entities,)`, *optional*): KG ids of the entity slots, for
                false-negative masking (defaults to the slot index).
            graph_edges (`torch.LongTensor` of shape `(num_edges, 3)`, *optional*): the sampled G2E in-edges.
            teacher_text_embeds, teacher_image_embeds, teacher_logit_scale (*optional*): the frozen teacher's projected
                embeddings of the batch's text and image entities and its `logit_scale`; the KD term needs them.
            unused_batch_fields: the collator's other fields, so that `loss(output, scale, **batch)` works.

        Returns:
            `dict[str, torch.Tensor]`: every term the batch allows (`e2e_loss`, `e2r_loss`, `g2e_loss`, `kd_loss`,
            `clip_loss`) and their weighted sum as `loss`.
        """
        heads, relations, tails = triplets.unbind(dim=1)
        if entity_ids is None:
            entity_ids = torch.arange(output.entity_embeds.shape[0], device=triplets.device)
        triplet_labels = relation_labels[relations]
        gather = self.gather
        losses = {
            "e2e_loss": e2e_loss(
                output.entity_embeds[tails],
                output.query_embeds,
                entity_ids[heads],
                triplet_labels,
                entity_ids[tails],
                self.knowledge_temperature,
                gather,
            )
        }
        if self.num_relations > 0:
            losses["e2r_loss"] = e2r_loss(output.relation_logits, triplet_labels, gather)
        if output.graph_embeds is not None:
            # Targets are the batch's tails that received messages; one without sampled in-edges has G^L = Y and
            # would only add a trivial positive.
            targets = torch.unique(tails)
            targets = targets[torch.isin(targets, graph_edges[:, 2])]
            losses["g2e_loss"] = g2e_loss(
                output.entity_embeds[targets],
                output.graph_embeds[targets],
                entity_ids[targets],
                self.knowledge_temperature,
                gather,
            )
        if teacher_text_embeds is not None and teacher_image_embeds is not None:
            if teacher_logit_scale is None:
                raise ValueError("teacher_logit_scale is required with teacher_image_embeds/teacher_text_embeds.")
            losses["kd_loss"] = kd_loss(
                output.image_embeds,
                output.text_embeds,
                teacher_image_embeds,
                teacher_text_embeds,
                logit_scale,
                teacher_logit_scale,
                self.kd_temperature,
                gather,
            )
        if self.weights["clip_loss"] > 0:
            losses["clip_loss"] = self._pair_clip_loss(output, logit_scale, entity_ids, triplets)
        losses["loss"] = sum(self.weights[name] * value for name, value in losses.items())
        return losses

    def _pair_clip_loss(
        self, output, logit_scale: torch.Tensor, entity_ids: torch.Tensor, triplets: torch.Tensor
    ) -> torch.Tensor:
        """CLIP's loss on the distinct (image, text) pairs that the batch's triplets connect, in either direction."""
        num_texts = output.text_embeds.shape[0]
        ends = triplets[:, [0, 2]]
        is_image = ends >= num_texts
        mixed = is_image[:, 0] != is_image[:, 1]
        image_slots = torch.where(is_image[:, 0], ends[:, 0], ends[:, 1])[mixed]
        text_slots = torch.where(is_image[:, 0], ends[:, 1], ends[:, 0])[mixed]
        pairs = torch.unique(torch.stack([image_slots, text_slots], dim=1), dim=0)
        return clip_loss(
            output.image_embeds[pairs[:, 0] - num_texts],
            output.text_embeds[pairs[:, 1]],
            entity_ids[pairs[:, 0]],
            entity_ids[pairs[:, 1]],
            logit_scale,
            self.gather,
        )
