# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The frozen KD teacher's inputs to the KD term: computed for every batch, or read from a cache of the entity inputs
the teacher has already embedded."""

import collections

import torch

from ..modeling_knowledge_clip import text_tower_in_length_buckets

__all__ = ["TeacherEmbeddingCache", "teacher_embeddings"]


@torch.no_grad()
def teacher_embeddings(teacher_model, batch: dict, cache: "TeacherEmbeddingCache | None" = None) -> dict:
    """
    The frozen teacher's inputs to the KD term: its projected embeddings of the batch's text and image entities and
    its `logit_scale`, computed without gradient.

    Args:
        teacher_model (`CLIPModel`): The original CLIP.
        batch (`dict`): A knowledge batch from the collator (its `entity_*` fields are read).
        cache ([`TeacherEmbeddingCache`], *optional*): Reuse the teacher's embeddings of entity inputs it has seen in
            earlier batches; every entity is run through the teacher when `None`.

    Returns:
        `dict`: `teacher_text_embeds`, `teacher_image_embeds`, `teacher_logit_scale`, to pass to the model's forward or
        to [`KnowledgeCLIPLoss`].
    """
    if cache is None:
        text_embeds, image_embeds = _embed(
            teacher_model,
            batch.get("entity_input_ids"),
            batch.get("entity_attention_mask"),
            batch.get("entity_pixel_values"),
            batch.get("interpolate_pos_encoding", False),
        )
    else:
        text_embeds, image_embeds = cache.embed(teacher_model, batch)
    return {
        "teacher_text_embeds": text_embeds,
        "teacher_image_embeds": image_embeds,
        "teacher_logit_scale": teacher_model.logit_scale.detach(),
    }


def _embed(
    teacher_model,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    pixel_values: torch.Tensor | None,
    interpolate_pos_encoding: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's projected embeddings of the given texts and images, `(num_texts, dim)` and `(num_images, dim)`."""
    empty = teacher_model.text_projection.weight.new_zeros(0, teacher_model.config.projection_dim)
    text_embeds = image_embeds = empty
    if input_ids is not None and input_ids.shape[0] > 0:
        # In length buckets, as the student's text tower runs: the same pooled outputs without the padding's cost.
        pooled = text_tower_in_length_buckets(teacher_model.text_model, input_ids, attention_mask)[0].pooler_output
        text_embeds = teacher_model.text_projection(pooled)
    if pixel_values is not None and pixel_values.shape[0] > 0:
        # The teacher reads the same images as the student, so it needs the same position interpolation.
        image_embeds = teacher_model.get_image_features(
            pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding
        ).pooler_output
    return text_embeds, image_embeds


class TeacherEmbeddingCache:
    """
    The frozen KD teacher's projected embeddings of the entity inputs it has already seen, so that an entity shown
    again with the same input (the same text tokens, the same image pixels) is not run through the teacher again.

    Keys are the batch's `entity_input_hashes` (`knowledge_clip.processing_knowledge_clip.tower_input_hashes`, which
    the processor adds to every knowledge batch): a hash of the tower input itself, not of the entity, so an entity
    shown through another view, crop or augmentation is simply a new key. Values are the teacher's embeddings as first
    computed. This is valid because the teacher is frozen: the same input always gives the same embedding, so a cached
    row equals a recomputed one up to the last bits of float rounding that a row's batch can change (matrix products
    block differently for different batch sizes). A cache serves the one teacher it first embedded with.

    Memory is bounded: at most `max_entries` embeddings are kept, the least recently used dropped first, in one table
    of `(entries, projection_dim)` on the teacher's device and in its dtype, grown as entries arrive (65,536 entries of
    ViT-B/32's 512 float32 values take 128 MiB). Each process keeps its own cache, of the entities its own batches
    hold; it is never saved in a checkpoint, so a resumed run recomputes what it needs, with the same values.

    The step reads the batch's hashes on the host (`hashes.tolist()`): one host sync per step, in exchange for the
    teacher's tower passes over every entity seen before.

    Args:
        max_entries (`int`, *optional*, defaults to 65536): The most embeddings kept.
    """

    def __init__(self, max_entries: int = 65536):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries} (pass no cache to turn it off)")
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._teacher = None
        self._values: torch.Tensor | None = None
        # Key -> row of `_values`, least recently used first.
        self._row_of_key: collections.OrderedDict[int, int] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._row_of_key)

    @torch.no_grad()
    def embed(self, teacher_model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The teacher's embeddings of the batch's text and image entities, `(num_texts, dim)` and `(num_images, dim)`:
        cached rows read back, the others computed by `teacher_model` (one pass per tower) and cached.
        """
        if self._teacher is None:
            self._teacher = teacher_model
        elif self._teacher is not teacher_model:
            raise ValueError(
                "A TeacherEmbeddingCache serves one teacher; this one already holds another's embeddings."
            )
        if batch.get("entity_input_hashes") is None:
            raise ValueError(
                "The teacher cache needs the batch's entity_input_hashes, which KnowledgeCLIPProcessor adds to every "
                "knowledge batch; pass no cache for batches built otherwise."
            )
        keys = batch["entity_input_hashes"].tolist()
        input_ids, attention_mask = batch.get("entity_input_ids"), batch.get("entity_attention_mask")
        pixel_values = batch.get("entity_pixel_values")
        num_texts = 0 if input_ids is None else input_ids.shape[0]
        cached_rows = [self._row_of_key.get(key) for key in keys]
        hits = [slot for slot, row in enumerate(cached_rows) if row is not None]
        missing = [slot for slot, row in enumerate(cached_rows) if row is None]
        for slot in hits:
            self._row_of_key.move_to_end(keys[slot])
        self.hits += len(hits)
        self.misses += len(missing)

        device = teacher_model.logit_scale.device
        missing_texts = torch.tensor([slot for slot in missing if slot < num_texts], dtype=torch.long, device=device)
        missing_images = torch.tensor(
            [slot - num_texts for slot in missing if slot >= num_texts], dtype=torch.long, device=device
        )
        computed = torch.cat(
            _embed(
                teacher_model,
                input_ids[missing_texts] if input_ids is not None else None,
                attention_mask[missing_texts] if attention_mask is not None else None,
                pixel_values[missing_images] if pixel_values is not None else None,
                batch.get("interpolate_pos_encoding", False),
            )
        )
        embeds = computed.new_empty(len(keys), computed.shape[1])
        if hits:
            cached = torch.tensor([cached_rows[slot] for slot in hits], dtype=torch.long, device=device)
            embeds[torch.tensor(hits, dtype=torch.long, device=device)] = self._values[cached]
        if missing:
            embeds[torch.tensor(missing, dtype=torch.long, device=device)] = computed
            self._store([keys[slot] for slot in missing], computed)
        return embeds[:num_texts], embeds[num_texts:]

    def _store(self, keys: list[int], values: torch.Tensor) -> None:
        # More new keys than the cache holds: only the last ones could stay, and storing the others first would hand
        # their rows to the later ones within this call.
        keys, values = keys[-self.max_entries :], values[-self.max_entries :]
        rows = []
        for key in keys:
            row = self._row_of_key.get(key)
            if row is None:
                if len(self._row_of_key) < self.max_entries:
                    row = len(self._row_of_key)
                else:
                    _, row = self._row_of_key.popitem(last=False)
                self._row_of_key[key] = row
            rows.append(row)
        capacity = 0 if self._values is None else self._values.shape[0]
        if max(rows) >= capacity:
            grown = values.new_empty(min(self.max_entries, max(max(rows) + 1, 2 * capacity)), values.shape[1])
            if self._values is not None:
                grown[:capacity] = self._values
            self._values = grown
        self._values[torch.tensor(rows, dtype=torch.long, device=values.device)] = values
