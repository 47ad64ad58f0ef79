# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The frozen KD teacher's inputs to the KD term: computed for every batch, or read from a cache of the entity inputs
the teacher has already embedded."""

import collections
import functools

import torch
import torch.nn.functional as F
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPooling

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
        pooled = text_tower_in_length_buckets(
            functools.partial(_pooled_text_output, teacher_model.text_model), input_ids, attention_mask
        )[0].pooler_output
        text_embeds = teacher_model.text_projection(pooled)
    if pixel_values is not None and pixel_values.shape[0] > 0:
        pooled = _pooled_image_output(teacher_model.vision_model, pixel_values, interpolate_pos_encoding)
        image_embeds = teacher_model.visual_projection(pooled)
    return text_embeds, image_embeds


# KD reads one output per entity, the pooled one (a text's EOS token, an image's class token), so the teacher's last
# layer computes its query, attention output and MLP at that token alone, every token still a key and a value: CLIP's
# pooled output at a fraction of the last layer's cost (the student's towers cannot do this: the fusion encoder reads
# every token). The functions below follow transformers' `CLIPTextModel.forward` / `CLIPVisionModel.forward` up to
# the last layer.


def _pooled_text_output(
    text_model, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> BaseModelOutputWithPooling:
    """`CLIPTextModel(input_ids, attention_mask).pooler_output` (the EOS token's state after the final layer norm),
    as `pooler_output`; no `last_hidden_state`."""
    hidden_states = text_model.embeddings(input_ids=input_ids)
    mask = create_causal_mask(
        config=text_model.config, inputs_embeds=hidden_states, attention_mask=attention_mask, cache=None
    )
    *inner_layers, last_layer = text_model.encoder.layers
    for layer in inner_layers:
        hidden_states = layer(hidden_states, mask, is_causal=True)
    ids = input_ids.int()
    if text_model.eos_token_id == 2:
        # CLIPTextModel's legacy rule for configs written before transformers fixed `eos_token_id`: the EOS token is
        # the highest id of the row.
        eos_positions = ids.argmax(dim=-1)
    else:
        eos_positions = (ids == text_model.eos_token_id).int().argmax(dim=-1)
    # The causal mask's row at the EOS token: the real tokens up to it.
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    readable = (positions <= eos_positions.unsqueeze(1)) & attention_mask.bool()
    pooled = _layer_output_at(last_layer, hidden_states, eos_positions, readable)
    return BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=text_model.final_layer_norm(pooled))


def _pooled_image_output(vision_model, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> torch.Tensor:
    """`CLIPVisionModel(pixel_values).pooler_output`: the class token's state after the post layer norm."""
    hidden_states = vision_model.pre_layrnorm(
        vision_model.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
    )
    *inner_layers, last_layer = vision_model.encoder.layers
    for layer in inner_layers:
        hidden_states = layer(hidden_states, None)
    class_positions = torch.zeros(hidden_states.shape[0], dtype=torch.long, device=hidden_states.device)
    return vision_model.post_layernorm(_layer_output_at(last_layer, hidden_states, class_positions, None))


def _layer_output_at(
    layer, hidden_states: torch.Tensor, positions: torch.Tensor, readable: torch.Tensor | None
) -> torch.Tensor:
    """
    A `CLIPEncoderLayer`'s output at one position per row.

    Args:
        layer (`CLIPEncoderLayer`): pre-norm attention and MLP.
        hidden_states (`torch.Tensor` of shape `(rows, seq_len, hidden)`): the layer's input.
        positions (`torch.LongTensor` of shape `(rows,)`): the position whose output is wanted.
        readable (`torch.BoolTensor` of shape `(rows, seq_len)`, *optional*): the keys that position attends to;
            all when `None`.

    Returns:
        `torch.Tensor` of shape `(rows, hidden)`.
    """
    attention = layer.self_attn
    rows, hidden_size = hidden_states.shape[0], hidden_states.shape[-1]

    def split_heads(states: torch.Tensor) -> torch.Tensor:
        return states.view(rows, -1, attention.num_heads, attention.head_dim).transpose(1, 2)

    at_position = positions.view(rows, 1, 1).expand(-1, 1, hidden_size)
    normed = layer.layer_norm1(hidden_states)
    attended = F.scaled_dot_product_attention(
        split_heads(attention.q_proj(normed.gather(1, at_position))),
        split_heads(attention.k_proj(normed)),
        split_heads(attention.v_proj(normed)),
        attn_mask=None if readable is None else readable[:, None, None, :],
        scale=attention.scale,
    )
    hidden_states = hidden_states.gather(1, at_position) + attention.out_proj(
        attended.transpose(1, 2).reshape(rows, 1, -1)
    )
    return (hidden_states + layer.mlp(layer.layer_norm2(hidden_states)))[:, 0]


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
