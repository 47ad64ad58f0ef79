# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The paper's equations computed literally, one term at a time: the reference that the batched, deduplicated model is
checked against (tests/test_losses_reference.py, within 1e-5) and timed against (benchmarks/bench_training.py).

Nothing of the model's batched path is reused: every fusion sequence of every objective is built by hand from the
model's parameters (Eq. 3 with the masking of Eq. 6) and run through the fusion encoder alone; every entity
occurrence inside it is its own tower pass over its unpadded tokens; the losses are written as sums over the batch's
rows, each row's candidates chosen explicitly. It is slow by design and only meant for small batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import CLIPModel

from .modeling_knowledge_clip import KnowledgeCLIPModel


class LiteralKnowledgeCLIP:
    """
    The four objectives of one collated knowledge batch (`KnowledgeCLIPProcessor(triplets=..., graph_edges=...)`),
    computed term by term from `model`'s parameters; gradients flow to them as in the batched step.

    Entities are the batch's slots (texts first, then images) and the identities that decide interchangeable
    candidates are the batch's `entity_ids`, as in the model. `fusion_passes` and `tower_passes` count what was run.

    Args:
        model (`KnowledgeCLIPModel`): the student; its dropout must be off (`eval()` or zero rates) for the result to
            equal the batched step's.
        teacher (`CLIPModel`): the frozen KD teacher.
        batch (`dict`): the collated knowledge batch.
    """

    def __init__(self, model: KnowledgeCLIPModel, teacher: CLIPModel, batch: dict):
        if model.config.clip_loss_weight:
            raise ValueError("The literal reference covers the paper's four objectives, not clip_loss.")
        self.model, self.teacher, self.batch = model, teacher, batch
        self.num_texts = batch["entity_input_ids"].shape[0] if "entity_input_ids" in batch else 0
        self.num_entities = batch["entity_ids"].shape[0]
        self.fusion_passes = self.tower_passes = 0

    # --------------------------------------------------------------------------------------- one entity, one pass
    def _text_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return input_ids[attention_mask.bool()].unsqueeze(0)

    def entity_tokens(self, slot: int) -> torch.Tensor:
        """x_e `(num_tokens, fusion_hidden)`: one tower pass over the entity alone, mapped to the fusion width."""
        self.tower_passes += 1
        model = self.model
        if slot < self.num_texts:
            ids = self._text_ids(self.batch["entity_input_ids"][slot], self.batch["entity_attention_mask"][slot])
            return model.text_to_fusion(model.text_model(input_ids=ids).last_hidden_state[0])
        pixels = self.batch["entity_pixel_values"][slot - self.num_texts].unsqueeze(0)
        hidden = model.vision_model(pixel_values=pixels).last_hidden_state
        return model.vision_to_fusion(model.vision_model.post_layernorm(hidden))[0]

    def relation_token(self, row: int) -> torch.Tensor:
        """x̄_r `(fusion_hidden,)`: one text-tower pass over the relation alone, pooled, mapped to the fusion width."""
        self.tower_passes += 1
        ids = self._text_ids(self.batch["relation_input_ids"][row], self.batch["relation_attention_mask"][row])
        return self.model.text_to_fusion(self.model.text_model(input_ids=ids).pooler_output)[0]

    def sequence(self, head: int | None, relation: int | None, tail: int | None) -> tuple[torch.Tensor, int]:
        """
        The one sequence `X(head, relation, tail)` `(seq_len, fusion_hidden)` and the index of its relation slot:
        Eq. 3, `[<head>, x_h + PE_h, x̄_r + PE_r, x_t + PE_t]`, with a masked part (`None`, Eq. 6) one zero token.
        """
        embeddings = self.model.fusion_encoder.embeddings
        width = embeddings.head_token.shape[0]
        x_h = self.entity_tokens(head) if head is not None else embeddings.head_token.new_zeros(1, width)
        x_t = self.entity_tokens(tail) if tail is not None else embeddings.head_token.new_zeros(1, width)
        x_r = self.relation_token(relation) if relation is not None else embeddings.head_token.new_zeros(width)
        rows = [
            embeddings.head_token[None],
            x_h + embeddings.head_role_embedding.weight[: x_h.shape[0]],
            (x_r + embeddings.relation_role_embedding)[None],
            x_t + embeddings.tail_role_embedding.weight[: x_t.shape[0]],
        ]
        return torch.cat(rows), 1 + x_h.shape[0]

    def fuse(self, head: int | None, relation: int | None, tail: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(Y, R)` of `X(head, relation, tail)` run through the fusion encoder alone: its output at `<head>` (Eq. 4)
        and at the relation slot (Eq. 5)."""
        self.fusion_passes += 1
        sequence, relation_position = self.sequence(head, relation, tail)
        hidden = self.model.fusion_encoder(inputs_embeds=sequence[None]).last_hidden_state[0]
        return hidden[0], hidden[relation_position]

    def projected(self, clip: CLIPModel, slot: int) -> torch.Tensor:
        """The CLIP embedding of one entity by `clip` (the student or the teacher): one tower pass."""
        self.tower_passes += 1
        if slot < self.num_texts:
            ids = self._text_ids(self.batch["entity_input_ids"][slot], self.batch["entity_attention_mask"][slot])
            return clip.get_text_features(input_ids=ids).pooler_output[0]
        pixels = self.batch["entity_pixel_values"][slot - self.num_texts].unsqueeze(0)
        return clip.get_image_features(pixel_values=pixels).pooler_output[0]

    def graph_embedding(self, layer: int, slot: int) -> torch.Tensor:
        """
        `G^l(e)` (Eqs. 11-12): `G^0(e) = Y(-,-,e)`; `G^l(t)` the mean, over t's sampled in-edges `(h, r, t)`, of
        `[W^l R(h,-,t)] ⊙ G^{l-1}(h)`; an entity without in-edges keeps `G^{l-1}`.
        """
        if layer == 0:
            return self.fuse(None, None, slot)[0]
        heads = [h for h, _, t in self.batch["graph_edges"].tolist() if t == slot]
        if not heads:
            return self.graph_embedding(layer - 1, slot)
        gate = self.model.graph_head.layers[layer - 1]
        messages = [gate(self.fuse(h, None, slot)[1]) * self.graph_embedding(layer - 1, h) for h in heads]
        return torch.stack(messages).mean(dim=0)

    # ------------------------------------------------------------------------------------------------ objectives
    def losses(self) -> dict[str, torch.Tensor]:
        """`loss` (Eq. 14, the config's weights) and its terms `e2e_loss`, `e2r_loss`, `g2e_loss`, `kd_loss`."""
        model, batch, config = self.model, self.batch, self.model.config
        triplets = batch["triplets"].tolist()
        ids = batch["entity_ids"].tolist()
        labels = batch["relation_labels"].tolist()
        scale = 1 / config.knowledge_temperature

        # E2E (Eq. 8): Y(-,-,t_i) against Y(h_i, r_i, -); a candidate with the same tail, or the same head and
        # relation, is as true as the positive and left out.
        tail_embeds = [self.fuse(None, None, t)[0] for _, _, t in triplets]
        query_embeds = [self.fuse(h, r, None)[0] for h, r, _ in triplets]

        def e2e_interchangeable(i: int, j: int) -> bool:
            (h_i, r_i, t_i), (h_j, r_j, t_j) = triplets[i], triplets[j]
            return ids[t_i] == ids[t_j] or (ids[h_i] == ids[h_j] and labels[r_i] == labels[r_j])

        losses = {"e2e_loss": info_nce(tail_embeds, query_embeds, e2e_interchangeable, scale)}

        # E2R (Eq. 10): cross-entropy of the relation MLP on R(h_i, -, t_i) over the relation vocabulary.
        e2r = [
            -F.log_softmax(model.relation_head(self.fuse(h, None, t)[1]), dim=-1)[labels[r]] for h, r, t in triplets
        ]
        losses["e2r_loss"] = torch.stack(e2r).mean()

        # G2E (Eq. 13): Y(-,-,t) against G^L(t) for the batch's distinct tails that have sampled in-edges.
        edge_tails = {t for _, _, t in batch["graph_edges"].tolist()}
        targets = sorted({t for _, _, t in triplets} & edge_tails)
        losses["g2e_loss"] = info_nce(
            [self.fuse(None, None, t)[0] for t in targets],
            [self.graph_embedding(config.graph_num_layers, t) for t in targets],
            lambda i, j: False,
            scale,
        )

        # KD: KL(teacher || student) of the image-to-text and text-to-image similarity distributions over the
        # batch's entities, each model with its own logit scale, at temperature T, times T² (Hinton et al.).
        texts, images = range(self.num_texts), range(self.num_texts, self.num_entities)
        student = {slot: self.projected(model, slot) for slot in (*texts, *images)}
        with torch.no_grad():
            teacher = {slot: self.projected(self.teacher, slot) for slot in (*texts, *images)}
        temperature = config.kd_temperature
        student_scale = model.logit_scale.exp() / temperature
        teacher_scale = self.teacher.logit_scale.exp().detach() / temperature
        kd = [
            kl(
                teacher_scale * cosine(teacher[row], torch.stack([teacher[c] for c in columns])),
                student_scale * cosine(student[row], torch.stack([student[c] for c in columns])),
            )
            for rows, columns in ((images, texts), (texts, images))
            if rows and columns
            for row in rows
        ]
        zero = model.logit_scale * 0.0
        losses["kd_loss"] = torch.stack(kd).mean() * temperature**2 if kd else zero

        losses["loss"] = sum(getattr(config, f"{name}_weight") * value for name, value in losses.items())
        return losses


def cosine(row: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of one vector to each row of `candidates`."""
    return F.cosine_similarity(row[None], candidates, dim=-1)


def kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """`KL(softmax(teacher) || softmax(student))` of one row."""
    teacher_log_probs = F.log_softmax(teacher_logits, dim=-1)
    return (teacher_log_probs.exp() * (teacher_log_probs - F.log_softmax(student_logits, dim=-1))).sum()


def info_nce(xs: list[torch.Tensor], ys: list[torch.Tensor], interchangeable, scale: float) -> torch.Tensor:
    """
    Eqs. 8 and 13 as written: for each row i, in both directions, `-log` of the positive's softmax share among the
    candidates j that are the positive or not `interchangeable(i, j)`; the mean over the `2n` terms.
    """
    n = len(xs)
    if n == 0:
        raise ValueError("InfoNCE needs at least one pair.")
    terms = []
    for i in range(n):
        candidates = [j for j in range(n) if j == i or not interchangeable(i, j)]
        for first, second in ((xs, ys), (ys, xs)):
            logits = scale * cosine(first[i], torch.stack([second[j] for j in candidates]))
            terms.append(torch.logsumexp(logits, dim=0) - logits[candidates.index(i)])
    return torch.stack(terms).mean()


__all__ = ["LiteralKnowledgeCLIP"]
