# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
PyTorch Knowledge-CLIP (Pan et al., "Contrastive Language-Image Pre-Training with Knowledge Graphs", NeurIPS 2022).

This module imports only its configuration and `losses.py`, flat and relative, so that `save_pretrained` of a model
registered for the auto classes copies everything `AutoModel.from_pretrained(..., trust_remote_code=True)` needs.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_knowledge_clip import KnowledgeCLIPConfig, KnowledgeFusionConfig
from .losses import KnowledgeCLIPLoss

MASKED = -1
"""Index that stands for a masked triplet element (`-` in the paper's `Y(h, r, -)`)."""


def masked_sequences(
    heads: torch.Tensor | None = None, relations: torch.Tensor | None = None, tails: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    The `(heads, relations, tails)` index columns of fusion sequences in which every part not given is masked
    (Eq. 6): `masked_sequences(tails=e)` is `Y(-,-,e)`, `masked_sequences(heads=h, relations=r)` is `Y(h,r,-)`,
    `masked_sequences(heads=h, tails=t)` is `R(h,-,t)` (and the joint image-text sequence).

    Args:
        heads, relations, tails (`torch.LongTensor` of shape `(num_sequences,)`, *optional*): at least one is given;
            the given ones have the same length.

    Returns:
        Three `torch.LongTensor` of shape `(num_sequences,)`, `MASKED` where a part was not given.
    """
    given = next(part for part in (heads, relations, tails) if part is not None)
    return tuple(part if part is not None else torch.full_like(given, MASKED) for part in (heads, relations, tails))


LENGTH_BUCKET_RATIO = 1.25
"""The largest longest-to-shortest ratio of the rows of one padded pass (fusion sequences, texts). Smaller wastes
less on padding but runs more, smaller passes: on the benchmark's CPU model (B = 64) a step took 10% less time at
1.25 than at 1.5, and no less at 1.12."""


def length_buckets(lengths: torch.Tensor, max_ratio: float = LENGTH_BUCKET_RATIO) -> list[tuple[torch.Tensor, int]]:
    """
    Rows grouped into padded passes by length: sorted by length, each pass takes the rows up to `max_ratio` times
    its shortest. The sorted lengths come to the host once (the call's one host sync, which the passes' Python
    widths need anyway); each pass's end is a binary search, not a loop over rows.

    Args:
        lengths (`torch.LongTensor` of shape `(num_rows,)`): the real length of each row, at least 1.
        max_ratio (`float`, *optional*, defaults to `LENGTH_BUCKET_RATIO`): the largest longest-to-shortest ratio
            within a pass.

    Returns:
        `list[tuple[torch.LongTensor, int]]`: per pass, its rows (indices into `lengths`, on its device, shortest
        first) and its width (the length of its longest row); the passes partition the rows.
    """
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].cpu()
    buckets, start = [], 0
    while start < sorted_lengths.shape[0]:
        longest_allowed = torch.tensor(math.floor(max_ratio * int(sorted_lengths[start])))
        end = int(torch.searchsorted(sorted_lengths, longest_allowed, right=True))
        buckets.append((order[start:end], int(sorted_lengths[end - 1])))
        start = end
    return buckets


def text_tower_in_length_buckets(
    text_model: Callable[..., BaseModelOutputWithPooling], input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[BaseModelOutputWithPooling, torch.Tensor]:
    """
    A CLIP text tower (`CLIPTextModel`) over `input_ids` in passes grouped by real length (`length_buckets`),
    each cut to its longest text, so that short texts do not pay for long ones. Real tokens are left-aligned first,
    so that they sit at positions `0 .. n - 1` whatever side the tokenizer padded (what a text alone would get).
    CLIP's causal mask means a real token never reads a later position, so cutting the padding changes no output, and
    the pooled (EOS) token is found among the same tokens as in one padded pass.

    Args:
        text_model: the tower, or any callable of `input_ids` and `attention_mask` that returns its `pooler_output`
            and `last_hidden_state` (or `None`, for a tower that computes the pooled output alone).

    Returns:
        The tower's output in row order, `last_hidden_state` `(num_rows, longest, hidden)` with each row's real
        tokens left-aligned (positions past a row's length hold padding outputs or zeros; `None` when the tower gave
        none) and `pooler_output` `(num_rows, hidden)`; and the real length of each row `(num_rows,)`.
    """
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    # A stable sort of the padding flags moves every row's real tokens to its front, in order.
    left_aligned = torch.sort((~mask).int(), dim=1, stable=True).indices
    input_ids = torch.gather(input_ids, 1, left_aligned)
    attention_mask = torch.gather(attention_mask, 1, left_aligned)
    buckets = length_buckets(lengths)
    longest = max(width for _, width in buckets)
    hidden, pooled = [], []
    for rows, width in buckets:
        output = text_model(input_ids=input_ids[rows, :width], attention_mask=attention_mask[rows, :width])
        if output.last_hidden_state is not None:
            hidden.append(F.pad(output.last_hidden_state, (0, 0, 0, longest - width)))
        pooled.append(output.pooler_output)
    input_order = torch.argsort(torch.cat([rows for rows, _ in buckets]))
    output = BaseModelOutputWithPooling(
        last_hidden_state=torch.cat(hidden)[input_order] if hidden else None,
        pooler_output=torch.cat(pooled)[input_order],
    )
    return output, lengths


@dataclass
class KnowledgeCLIPOutput(ModelOutput):
    r"""
    Output of [`KnowledgeCLIPModel`]: a superset of `CLIPOutput`.

    For plain CLIP inputs (`input_ids`, `pixel_values`) the CLIP fields are exactly `CLIPModel`'s and `loss` is CLIP's
    contrastive loss. For a knowledge batch (`triplets` given) the CLIP fields describe the batch's text and image
    entities, and the knowledge fields are filled.

    Args:
        loss (`torch.Tensor` of shape `()`, *optional*, returned when `return_loss=True`):
            The total loss: the weighted sum of the objectives below that were computed (Eq. 14).
        e2e_loss (`torch.Tensor` of shape `()`, *optional*):
            Entity-entity InfoNCE (Eq. 8).
        e2r_loss (`torch.Tensor` of shape `()`, *optional*):
            Entity-relation cross-entropy (Eq. 10).
        g2e_loss (`torch.Tensor` of shape `()`, *optional*):
            Graph-entity InfoNCE (Eq. 13); computed when `graph_edges` are given.
        kd_loss (`torch.Tensor` of shape `()`, *optional*):
            Distillation against the teacher; computed when the teacher's embeddings are given.
        clip_loss (`torch.Tensor` of shape `()`, *optional*):
            CLIP's contrastive loss on the batch's image-text triplets; computed when `config.clip_loss_weight > 0`.
        logits_per_image (`torch.Tensor` of shape `(image_batch_size, text_batch_size)`):
            Scaled cosine similarities between image and text embeddings.
        logits_per_text (`torch.Tensor` of shape `(text_batch_size, image_batch_size)`):
            The transpose of `logits_per_image`.
        text_embeds (`torch.Tensor` of shape `(text_batch_size, projection_dim)`):
            Normalised projected text embeddings.
        image_embeds (`torch.Tensor` of shape `(image_batch_size, projection_dim)`):
            Normalised projected image embeddings.
        text_model_output (`BaseModelOutputWithPooling`):
            Output of the text tower. For a knowledge batch its rows are the entity texts, then the relations, each
            row's real tokens left-aligned in `last_hidden_state` (positions past a row's length are padding); the
            tower ran in passes grouped by length, so only `last_hidden_state` and `pooler_output` are filled.
        vision_model_output (`BaseModelOutputWithPooling`):
            Output of the vision tower.
        entity_embeds (`torch.Tensor` of shape `(num_entities, fusion_hidden_size)`, *optional*):
            The entity representation `Y(-,-,e)` of every entity of the batch, in slot order (texts, then images).
        query_embeds (`torch.Tensor` of shape `(num_triplets, fusion_hidden_size)`, *optional*):
            `Y(h_i, r_i, -)` of each triplet (Eq. 4 with the tail masked).
        relation_embeds (`torch.Tensor` of shape `(num_triplets, fusion_hidden_size)`, *optional*):
            `R(h_i, -, t_i)` of each triplet (Eq. 5 with the relation masked).
        relation_logits (`torch.Tensor` of shape `(num_triplets, num_relations)`, *optional*):
            The relation classifier's logits on `relation_embeds`.
        graph_embeds (`torch.Tensor` of shape `(num_entities, fusion_hidden_size)`, *optional*):
            `G^L(e)` of every entity after message passing over `graph_edges` (Eqs. 11-12).
        fusion_model_output ([`KnowledgeFusionOutput`], *optional*):
            The fusion encoder's output for every sequence of the batch, rows in input order: the entities' `Y(-,-,e)`
            (one per entity slot), then the distinct queries `Y(h,r,-)`, then the distinct pairs `R(h,-,t)`;
            `fusion_model_output.sequences` names each row's `(head, relation, tail)`. Token states, `hidden_states`
            and `attentions` are filled when requested.
    """

    loss: torch.Tensor | None = None
    e2e_loss: torch.Tensor | None = None
    e2r_loss: torch.Tensor | None = None
    g2e_loss: torch.Tensor | None = None
    kd_loss: torch.Tensor | None = None
    clip_loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_model_output: BaseModelOutputWithPooling = None
    vision_model_output: BaseModelOutputWithPooling = None
    entity_embeds: torch.Tensor | None = None
    query_embeds: torch.Tensor | None = None
    relation_embeds: torch.Tensor | None = None
    relation_logits: torch.Tensor | None = None
    graph_embeds: torch.Tensor | None = None
    fusion_model_output: "KnowledgeFusionOutput | None" = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in (self[k] for k in self.keys()))


@dataclass
class KnowledgeFusionOutput(ModelOutput):
    r"""
    Output of [`KnowledgeCLIPModel.fuse`] and [`KnowledgeCLIPModel.get_joint_features`]: the fusion encoder's reading
    of a set of sequences `X(h, r, t)`, every field's rows in the order of the input sequences (the length buckets the
    encoder runs in are undone).

    Args:
        pooler_output (`torch.Tensor` of shape `(num_sequences, fusion_hidden_size)`):
            `Y`, the output at index 0 (Eq. 4): the triplet, entity or query representation, or the joint image-text
            representation.
        relation_embeds (`torch.Tensor` of shape `(num_sequences, fusion_hidden_size)`):
            `R`, the output at the relation slot (Eq. 5).
        sequences (`torch.LongTensor` of shape `(num_sequences, 3)`):
            `(head slot, relation row, tail slot)` of each row, `MASKED` for a masked part.
        relation_positions (`torch.LongTensor` of shape `(num_sequences,)`):
            Index of the relation slot: head tokens sit at `1 .. relation_positions - 1`, tail tokens after it.
        last_hidden_state (`torch.Tensor` of shape `(num_sequences, seq_len, fusion_hidden_size)`, *optional*):
            Every token's output, right-padded to the longest sequence; with `return_token_states=True` or when
            hidden states or attentions are requested.
        attention_mask (`torch.LongTensor` of shape `(num_sequences, seq_len)`, *optional*):
            1 for the real tokens of `last_hidden_state`.
        hidden_states (`tuple(torch.Tensor)`, *optional*, returned when `output_hidden_states=True`):
            The embeddings and each layer's output, each `(num_sequences, seq_len, fusion_hidden_size)`.
        attentions (`tuple(torch.Tensor)`, *optional*, returned when `output_attentions=True`):
            Each layer's attention weights, `(num_sequences, num_heads, seq_len, seq_len)`, zero where padded.
    """

    pooler_output: torch.Tensor | None = None
    relation_embeds: torch.Tensor | None = None
    sequences: torch.LongTensor | None = None
    relation_positions: torch.LongTensor | None = None
    last_hidden_state: torch.Tensor | None = None
    attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class EntityFeatures:
    """
    What the towers make of a batch's entities and relations, ready for the fusion encoder.

    Args:
        tokens (`torch.Tensor` of shape `(num_entities, max_tokens, fusion_hidden_size)`): each entity's token features,
            mapped to the fusion width and left-aligned (texts' real tokens, images' class token and patches).
        lengths (`torch.Tensor` of shape `(num_entities,)`): number of real tokens of each entity.
        relation_tokens (`torch.Tensor` of shape `(num_relations_in_batch, fusion_hidden_size)`): x̄_r, the pooled
            text-tower output of each relation mapped to the fusion width.
        text_embeds (`torch.Tensor` of shape `(num_text_entities, projection_dim)`): projected, un-normalised.
        image_embeds (`torch.Tensor` of shape `(num_image_entities, projection_dim)`): projected, un-normalised.
        text_model_output, vision_model_output (`BaseModelOutputWithPooling`, *optional*): the towers' outputs (the
            text tower's rows: entity texts, then relations, real tokens left-aligned).
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    relation_tokens: torch.Tensor
    text_embeds: torch.Tensor
    image_embeds: torch.Tensor
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample with probability `drop_prob` while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class KnowledgeFusionAttention(nn.Module):
    """Multi-head self-attention dispatched through transformers' attention interface (SDPA by default)."""

    def __init__(self, config: KnowledgeFusionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def project(
        self, query_inputs: torch.Tensor, key_value_inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The query, key and value projections, `(..., hidden)` each, of the normalised inputs."""
        return self.q_proj(query_inputs), self.k_proj(key_value_inputs), self.v_proj(key_value_inputs)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            queries (`torch.Tensor` of shape `(batch, num_queries, hidden)`): projected (`project`), of the positions
                whose outputs are wanted.
            keys, values (`torch.Tensor` of shape `(batch, seq_len, hidden)`): projected, of every position.
            attention_mask (`torch.Tensor`, *optional*): the prepared mask, `(batch, 1, num_queries, seq_len)`.

        Returns:
            The attention output `(batch, num_queries, hidden)` and, where the attention function returns them, its
            weights.
        """
        output_shape = queries.shape
        queries, keys, values = (
            states.view(*states.shape[:-1], -1, self.head_dim).transpose(1, 2) for states in (queries, keys, values)
        )
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            queries,
            keys,
            values,
            attention_mask,
            scaling=self.scale,
            dropout=0.0 if not self.training else self.dropout,
            **kwargs,
        )
        attn_output = self.out_proj(attn_output.reshape(output_shape).contiguous())
        return attn_output, attn_weights


@dataclass
class FusionRows:
    """
    The distinct input rows of a set of fusion sequences (Eq. 3; `KnowledgeFusionEmbeddings`) with the first fusion
    layer's query, key and value projections of each ([`KnowledgeFusionModel.project_rows`]): an entity's tokens with
    their role encodings are the same rows in every sequence that holds the entity in that role, so the first layer's
    layer norm and projections run once per row, not once per position.

    Args:
        inputs (`torch.Tensor` of shape `(num_rows, hidden)`): the rows.
        queries, keys, values (`torch.Tensor` of shape `(num_rows, hidden)`): the first layer's projections of
            `layer_norm1(inputs)`.
    """

    inputs: torch.Tensor
    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor


class KnowledgeFusionMLP(nn.Module):
    def __init__(self, config: KnowledgeFusionConfig):
        super().__init__()
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class KnowledgeFusionLayer(GradientCheckpointingLayer):
    """A pre-norm transformer layer with stochastic depth on both residual branches."""

    def __init__(self, config: KnowledgeFusionConfig, drop_path_rate: float):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = KnowledgeFusionAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = KnowledgeFusionMLP(config)
        self.drop_path = DropPath(drop_path_rate)

    def project_rows(self, rows: torch.Tensor) -> FusionRows:
        """This layer's layer norm and query, key and value projections of distinct input rows `(num_rows, hidden)`."""
        normed = self.layer_norm1(rows)
        return FusionRows(rows, *self.self_attn.project(normed, normed))

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        output_positions: torch.Tensor | None = None,
        projected_rows: FusionRows | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states (`torch.Tensor` of shape `(batch, seq_len, hidden)`): the layer's input; with
                `projected_rows`, a `torch.LongTensor` of shape `(batch, seq_len)`: the row of `projected_rows` each
                position reads.
            attention_mask (`torch.Tensor`, *optional*): the prepared mask, `(batch, 1, num_outputs, seq_len)`.
            output_positions (`torch.LongTensor` of shape `(batch, num_positions)`, *optional*): compute the output at
                these positions only (every position still serves as a key and a value); the output is then
                `(batch, num_positions, hidden)`, equal to the full output at those positions.
            projected_rows ([`FusionRows`], *optional*): the input's distinct rows, already normalised and projected
                by this layer (`project_rows`).
        """
        if projected_rows is None:
            normed = self.layer_norm1(hidden_states)
            query_inputs, residual = normed, hidden_states
            if output_positions is not None:
                gather_index = output_positions.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
                query_inputs, residual = normed.gather(1, gather_index), hidden_states.gather(1, gather_index)
            queries, keys, values = self.self_attn.project(query_inputs, normed)
        else:
            rows = hidden_states
            query_rows = rows if output_positions is None else rows.gather(1, output_positions)
            queries, residual = (
                F.embedding(query_rows, projected_rows.queries),
                F.embedding(query_rows, projected_rows.inputs),
            )
            keys, values = F.embedding(rows, projected_rows.keys), F.embedding(rows, projected_rows.values)
        attn_output, _ = self.self_attn(queries, keys, values, attention_mask=attention_mask, **kwargs)
        hidden_states = residual + self.drop_path(attn_output)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.layer_norm2(hidden_states)))
        return hidden_states


class KnowledgeFusionEmbeddings(nn.Module):
    """
    Builds the fusion encoder's input sequences, Eq. 3 with the masking of Eq. 6:
    `X(h, r, t) = [<head>, x_h + PE_h, x̄_r + PE_r, x_t + PE_t]`.

    `<head>` is a learned token, `PE_h` and `PE_t` learned role encodings per token position, `PE_r` one learned
    vector. A masked element (index `MASKED`) is one zero token (our reading: the paper says "zero feature"), which
    still receives its role encoding, so the relation always sits at index `1 + len(x_h)` with `len = 1` for a masked
    head. Sequences are right-padded to the longest.

    The sequences are returned as their distinct rows and the row each position reads (`F.embedding(input_rows,
    rows)` is the padded sequences): an entity's tokens with their role encodings recur in every sequence that holds
    the entity in that role, so the rows are built, and the first fusion layer's layer norm and projections run
    ([`FusionRows`]), once per distinct row.
    """

    def __init__(self, config: KnowledgeFusionConfig):
        super().__init__()
        self.config = config
        self.head_token = nn.Parameter(torch.empty(config.hidden_size))
        self.relation_role_embedding = nn.Parameter(torch.empty(config.hidden_size))
        self.head_role_embedding = nn.Embedding(config.max_entity_tokens, config.hidden_size)
        self.tail_role_embedding = nn.Embedding(config.max_entity_tokens, config.hidden_size)

    @staticmethod
    def sequence_layout(
        entities: EntityFeatures, heads: torch.Tensor, tails: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The relation slot's index `1 + len(x_h)` and the length `2 + len(x_h) + len(x_t)` of each sequence, from the
        entities' token counts alone (a masked part counts one token), before anything is built.
        """
        one = torch.ones_like(heads)
        head_lengths = torch.where(heads == MASKED, one, entities.lengths[heads.clamp(min=0)])
        tail_lengths = torch.where(tails == MASKED, one, entities.lengths[tails.clamp(min=0)])
        relation_positions = 1 + head_lengths
        return relation_positions, relation_positions + 1 + tail_lengths

    def forward(
        self,
        entities: EntityFeatures,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        sequence_length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            entities (`EntityFeatures`): token features of the batch's entities and relations.
            heads, relations, tails (`torch.Tensor` of shape `(num_sequences,)`): entity slot / relation row of each
                sequence's parts, `MASKED` for a masked part.
            sequence_length (`int`, *optional*): the padded width, at least the longest row's length; read from the
                rows (a host sync) when `None`. [`KnowledgeCLIPModel.fuse`] passes the one its length buckets read.

        Returns:
            `rows` `(num_rows, hidden)`, the distinct input rows; `input_rows` `(num_sequences, seq_len)`, the row each
            position reads; `attention_mask` `(num_sequences, seq_len)`; and the index of the relation slot of each
            sequence `(num_sequences,)`. Padding positions read a zero row.
        """
        max_tokens = entities.tokens.shape[1]
        if max_tokens > self.config.max_entity_tokens:
            raise ValueError(
                f"An entity has {max_tokens} tokens but the fusion encoder has role encodings for "
                f"{self.config.max_entity_tokens} (fusion_encoder_config.max_entity_tokens)."
            )
        relation_positions, sequence_lengths = self.sequence_layout(entities, heads, tails)

        if sequence_length is None:
            sequence_length = int(sequence_lengths.max())
        positions = torch.arange(sequence_length, device=heads.device).unsqueeze(0)
        relation_at = relation_positions.unsqueeze(1)
        in_head = (positions >= 1) & (positions < relation_at)
        at_relation = positions == relation_at
        in_tail = (positions > relation_at) & (positions < sequence_lengths.unsqueeze(1))
        head_token_index = (positions - 1).clamp(0, max_tokens - 1)
        tail_token_index = (positions - relation_at - 1).clamp(0, max_tokens - 1)

        # Every position is at most one entity token plus one row of a small table of everything else: <head>, PE_h,
        # PE_t, a zero row for padding, and the relation slot's PE_r alone (a masked relation) or x̄_r + PE_r. So a
        # position is a pair (token or none, table row), and the distinct pairs are the distinct rows.
        num_roles, hidden_size = self.head_role_embedding.num_embeddings, entities.tokens.shape[-1]
        head_rows = heads.clamp(min=0).unsqueeze(1) * max_tokens + head_token_index
        tail_rows = tails.clamp(min=0).unsqueeze(1) * max_tokens + tail_token_index
        # A masked head or tail is one zero token (the masks admit index 0 of the part only).
        reads_head = in_head & (heads != MASKED).unsqueeze(1)
        reads_tail = in_tail & (tails != MASKED).unsqueeze(1)
        token_rows = torch.where(reads_head, head_rows, torch.where(reads_tail, tail_rows, -1))

        relation_role = self.relation_role_embedding.view(1, -1)
        role_table = torch.cat(
            [
                self.head_token.view(1, -1),
                self.head_role_embedding.weight,
                self.tail_role_embedding.weight,
                self.head_token.new_zeros(1, hidden_size),
                relation_role,
                entities.relation_tokens + relation_role,
            ]
        )
        relation_rows = 2 * num_roles + 2 + torch.where(relations == MASKED, 0, relations + 1)
        role_rows = torch.where(in_head, 1 + head_token_index, 1 + 2 * num_roles)
        role_rows = torch.where(in_tail, 1 + num_roles + tail_token_index, role_rows)
        role_rows = torch.where(at_relation, relation_rows.unsqueeze(1), role_rows)
        role_rows = torch.where(positions == 0, 0, role_rows)

        num_table_rows = role_table.shape[0]
        # On a GPU this is a host sync (the number of distinct rows), beside the one of `fuse`'s length buckets.
        pairs, input_rows = torch.unique((token_rows + 1) * num_table_rows + role_rows, return_inverse=True)
        pair_tokens, pair_roles = pairs // num_table_rows - 1, pairs % num_table_rows
        # The tokens are read from a view of their tensor: a copy of it with the table appended would cost its size.
        # The sum is taken in place, so that at most two tensors of the rows' size are live.
        rows = F.embedding(pair_tokens.clamp(min=0), entities.tokens.reshape(-1, hidden_size))
        rows = rows * (pair_tokens >= 0).unsqueeze(-1)
        rows += F.embedding(pair_roles, role_table)
        attention_mask = positions < sequence_lengths.unsqueeze(1)
        return rows, input_rows, attention_mask.long(), relation_positions


class KnowledgeFusionPreTrainedModel(PreTrainedModel):
    config: KnowledgeFusionConfig
    base_model_prefix = "fusion"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True
    _no_split_modules = ["KnowledgeFusionLayer"]
    _can_record_outputs = {"hidden_states": KnowledgeFusionLayer, "attentions": KnowledgeFusionAttention}

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, KnowledgeFusionEmbeddings):
            init.normal_(module.head_token, std=self.config.initializer_range)
            init.normal_(module.relation_role_embedding, std=self.config.initializer_range)


class KnowledgeFusionModel(KnowledgeFusionPreTrainedModel):
    """
    The multi-modal encoder of Knowledge-CLIP: `embeddings` builds the triplet sequences (Eq. 3), the layers read
    them, and a final layer norm gives the outputs from which Y (index 0, Eq. 4) and R (the relation slot, Eq. 5) are
    read.
    """

    def __init__(self, config: KnowledgeFusionConfig):
        super().__init__(config)
        self.embeddings = KnowledgeFusionEmbeddings(config)
        drop_path_rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([KnowledgeFusionLayer(config, rate) for rate in drop_path_rates])
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def project_rows(self, rows: torch.Tensor) -> FusionRows:
        """
        The first layer's layer norm and query, key and value projections of the distinct input rows of a set of
        sequences (`embeddings`), computed once for all the calls of `forward` that read them.

        Args:
            rows (`torch.Tensor` of shape `(num_rows, hidden_size)`): the distinct rows, as `embeddings` returns them.
        """
        return self.layers[0].project_rows(rows)

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_positions: torch.Tensor | None = None,
        projected_rows: FusionRows | None = None,
        input_rows: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """
        Args:
            inputs_embeds (`torch.Tensor` of shape `(num_sequences, seq_len, hidden_size)`, *optional*): sequences
                built by hand, or gathered from `embeddings`' rows; or give `projected_rows` and `input_rows`.
            attention_mask (`torch.Tensor` of shape `(num_sequences, seq_len)`, *optional*): 1 for real tokens.
            output_positions (`torch.LongTensor` of shape `(num_sequences, num_positions)`, *optional*): the only
                positions whose outputs are wanted (the objectives read two: index 0 and the relation slot). The last
                layer then computes its queries, attention output and MLP at these positions alone, every position
                still a key and a value: the same outputs there at a fraction of the last layer's cost.
                `last_hidden_state` is `(num_sequences, num_positions, hidden_size)`. Not with `output_hidden_states`
                or `output_attentions`, whose last entries would cover these positions only.
            projected_rows ([`FusionRows`], *optional*): the sequences' distinct rows with the first layer's
                projections (`project_rows`), with `input_rows`; the outputs are those of `inputs_embeds =
                F.embedding(input_rows, projected_rows.inputs)`. Not with `output_hidden_states` (whose first entry
                is the input sequences).
            input_rows (`torch.LongTensor` of shape `(num_sequences, seq_len)`, *optional*): the row of
                `projected_rows` each position reads.
        """
        if (inputs_embeds is None) == (projected_rows is None or input_rows is None):
            raise ValueError("Give inputs_embeds, or projected_rows and input_rows.")
        records = self.records_layer_outputs(**kwargs)
        if output_positions is not None and records:
            raise ValueError("output_positions cannot be combined with output_hidden_states or output_attentions.")
        if projected_rows is not None and records:
            raise ValueError("projected_rows cannot be combined with output_hidden_states or output_attentions.")
        # The masks read the sequences' shape, dtype and device only.
        shape_of = inputs_embeds
        if shape_of is None:
            shape_of = projected_rows.inputs.new_empty(*input_rows.shape, 0)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=shape_of, attention_mask=attention_mask)
        if output_positions is not None:
            # The queries' mask: (num_sequences, 1, num_positions, seq_len), keys' padding as in `mask`.
            queries_mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=shape_of[:, :1].expand(-1, output_positions.shape[1], -1),
                attention_mask=attention_mask,
                encoder_hidden_states=shape_of,
            )
        hidden_states = inputs_embeds if projected_rows is None else input_rows
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            layer_kwargs = dict(kwargs)
            if index == 0 and projected_rows is not None:
                layer_kwargs["projected_rows"] = projected_rows
            if index == last and output_positions is not None:
                hidden_states = layer(hidden_states, queries_mask, output_positions=output_positions, **layer_kwargs)
            else:
                hidden_states = layer(hidden_states, mask, **layer_kwargs)
        return BaseModelOutput(last_hidden_state=self.final_layer_norm(hidden_states))

    def records_layer_outputs(self, **kwargs) -> bool:
        """Whether a call with these keyword arguments returns every layer's hidden states or attentions (asked for
        in the call or, failing that, in the config)."""
        return any(
            kwargs.get(name, getattr(self.config, name)) for name in ("output_hidden_states", "output_attentions")
        )


class KnowledgeRelationHead(nn.Module):
    """The two-layer MLP of the E2R objective (Eq. 10): relation logits from `R(h, -, t)`."""

    def __init__(self, hidden_size: int, num_relations: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.GELU()
        self.classifier = nn.Linear(hidden_size, num_relations)

    def forward(self, relation_embeds: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.activation(self.dense(relation_embeds)))


class KnowledgeGraphHead(nn.Module):
    """
    The relation-gated message passing of the G2E objective (Eqs. 11-12):
    `G^0(e) = Y(-,-,e)` and `G^l(t) = mean over in-edges (h, r, t) of [W^l R(h,-,t)] ⊙ G^{l-1}(h)`.

    An entity without in-edges in the sampled subgraph keeps its previous representation (the paper is silent).
    """

    def __init__(self, hidden_size: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(hidden_size, hidden_size, bias=False) for _ in range(num_layers)])

    def forward(
        self,
        entity_embeds: torch.Tensor,
        edge_relation_embeds: torch.Tensor,
        edge_heads: torch.Tensor,
        edge_tails: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            entity_embeds (`torch.Tensor` of shape `(num_entities, hidden)`): `G^0`, i.e. `Y(-,-,e)`.
            edge_relation_embeds (`torch.Tensor` of shape `(num_edges, hidden)`): `R(h, -, t)` of each edge.
            edge_heads, edge_tails (`torch.Tensor` of shape `(num_edges,)`): entity slots of each edge's ends.

        Returns:
            `torch.Tensor` of shape `(num_entities, hidden)`: `G^L`.
        """
        in_degree = torch.zeros(entity_embeds.shape[0], device=entity_embeds.device, dtype=entity_embeds.dtype)
        in_degree = in_degree.index_add(0, edge_tails, torch.ones_like(edge_tails, dtype=entity_embeds.dtype))
        has_in_edges = (in_degree > 0).unsqueeze(-1)
        graph_embeds = entity_embeds
        for relation_gate in self.layers:
            messages = relation_gate(edge_relation_embeds) * graph_embeds[edge_heads]
            summed = torch.zeros_like(graph_embeds).index_add(0, edge_tails, messages.to(graph_embeds.dtype))
            graph_embeds = torch.where(has_in_edges, summed / in_degree.clamp(min=1).unsqueeze(-1), graph_embeds)
        return graph_embeds


class KnowledgeCLIPModel(CLIPModel):
    r"""
    Knowledge-CLIP: CLIP's two towers (module names unchanged, so CLIP checkpoints load into them and export back
    unchanged) plus a multi-modal fusion encoder over knowledge-graph triplets, a relation classifier (E2R) and a
    relation-gated graph head (G2E).

    Plain inputs (`input_ids`, `pixel_values`) behave exactly as `CLIPModel`. A knowledge batch from
    [`KnowledgeCLIPProcessor`] (`triplets`, entities, relations, optional `graph_edges`) runs the fusion encoder and,
    with `return_loss=True`, the objectives of Eq. 14.
    """

    config: KnowledgeCLIPConfig
    # The task models hold this model under `knowledge_clip`: the shared prefix lets transformers load this model's
    # checkpoint into a task model (prefix added) and a task checkpoint's towers back into this model (prefix removed).
    base_model_prefix = "knowledge_clip"
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings", "KnowledgeFusionLayer"]

    def __init__(self, config: KnowledgeCLIPConfig):
        super().__init__(config)
        fusion_size = config.fusion_encoder_config.hidden_size
        self.text_to_fusion = nn.Linear(config.text_config.hidden_size, fusion_size)
        self.vision_to_fusion = nn.Linear(config.vision_config.hidden_size, fusion_size)
        self.fusion_encoder = KnowledgeFusionModel._from_config(config.fusion_encoder_config)
        self.relation_head = KnowledgeRelationHead(fusion_size, config.num_relations)
        self.graph_head = KnowledgeGraphHead(fusion_size, config.graph_num_layers)
        self.post_init()

    def post_init(self):
        # `CLIPModel.__init__` calls `post_init()` before the knowledge modules exist; initialising then would leave
        # them to a second call that the `_is_hf_initialized` flag (set by the first call) turns into a no-op.
        if "graph_head" not in self._modules:
            return
        super().post_init()

    # ----------------------------------------------------------------------------------------------------------------
    # Public encoders
    # ----------------------------------------------------------------------------------------------------------------
    def encode_entity_features(
        self,
        entity_input_ids: torch.Tensor | None = None,
        entity_attention_mask: torch.Tensor | None = None,
        entity_pixel_values: torch.Tensor | None = None,
        relation_input_ids: torch.Tensor | None = None,
        relation_attention_mask: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> EntityFeatures:
        """
        Runs each tower once over the batch's unique entities (and the text tower over the relations in the same
        pass) and maps the token features to the fusion width.

        Text entities keep their real tokens (the text tower's final hidden states); image entities keep the class
        token and every patch (the vision tower's final hidden states through its post layer norm, so that the class
        token is CLIP's pooled image feature). Relations are pooled by the text tower (x̄_r).

        The text tower runs over the entity texts and relations together, in passes grouped by real length
        ([`text_tower_in_length_buckets`]): short relations and concept names do not pay for long captions, and every
        output is that of the text alone.
        """
        device = self.logit_scale.device
        num_texts = 0 if entity_input_ids is None else entity_input_ids.shape[0]
        num_relations = 0 if relation_input_ids is None else relation_input_ids.shape[0]
        text_model_output = vision_model_output = None
        token_chunks, length_chunks = [], []
        text_embeds = self.text_projection.weight.new_zeros(0, self.projection_dim)
        image_embeds = self.visual_projection.weight.new_zeros(0, self.projection_dim)
        relation_tokens = self.text_to_fusion.weight.new_zeros(0, self.text_to_fusion.out_features)

        if num_texts + num_relations > 0:
            text_model_output, text_lengths = text_tower_in_length_buckets(
                self.text_model,
                *self._concat_texts(
                    (entity_input_ids, entity_attention_mask), (relation_input_ids, relation_attention_mask)
                ),
            )
            hidden, pooled = text_model_output.last_hidden_state, text_model_output.pooler_output
            if num_texts:
                token_chunks.append(self.text_to_fusion(hidden[:num_texts]))
                length_chunks.append(text_lengths[:num_texts])
                text_embeds = self.text_projection(pooled[:num_texts])
            if num_relations:
                relation_tokens = self.text_to_fusion(pooled[num_texts:])

        if entity_pixel_values is not None and entity_pixel_values.shape[0] > 0:
            vision_model_output = self.vision_model(
                pixel_values=entity_pixel_values, interpolate_pos_encoding=interpolate_pos_encoding
            )
            hidden = self.vision_model.post_layernorm(vision_model_output.last_hidden_state)
            token_chunks.append(self.vision_to_fusion(hidden))
            length_chunks.append(torch.full((hidden.shape[0],), hidden.shape[1], device=device))
            image_embeds = self.visual_projection(vision_model_output.pooler_output)

        max_tokens = max((chunk.shape[1] for chunk in token_chunks), default=1)
        tokens = torch.cat([F.pad(chunk, (0, 0, 0, max_tokens - chunk.shape[1])) for chunk in token_chunks], dim=0)
        return EntityFeatures(
            tokens=tokens,
            lengths=torch.cat(length_chunks).long(),
            relation_tokens=relation_tokens,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=text_model_output,
            vision_model_output=vision_model_output,
        )

    def fuse(
        self,
        entities: EntityFeatures,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        return_token_states: bool = False,
        **kwargs,
    ) -> KnowledgeFusionOutput:
        """
        Runs the fusion encoder over the sequences `X(heads[k], relations[k], tails[k])` (Eq. 3, masked parts as in
        Eq. 6) and reads the triplet representation `Y` at index 0 (Eq. 4) and the relation representation `R` at the
        relation slot (Eq. 5).

        Sequences are sorted by length and run as a few padded passes whose longest row is at most
        `LENGTH_BUCKET_RATIO` times their shortest, so that short text sequences do not pay for long image ones;
        every output comes back in the order of the input rows.

        Args:
            entities (`EntityFeatures`): from [`~KnowledgeCLIPModel.encode_entity_features`].
            heads, relations, tails (`torch.LongTensor` of shape `(num_sequences,)`): entity slot / relation row of each
                sequence's parts, `MASKED` for a masked part (see [`masked_sequences`]).
            return_token_states (`bool`, *optional*, defaults to `False`): also return every token's output
                (`last_hidden_state`, `attention_mask`); implied by `output_hidden_states`/`output_attentions`.
                Without them the first fusion layer normalises and projects each distinct input row once
                ([`FusionRows`]; not under activation checkpointing, where keeping the projections for the backward
                pass would cost more memory than the padded inputs) and the last runs at the two read positions only
                (`output_positions` of [`KnowledgeFusionModel.forward`]), which gives the same `Y` and `R` for less
                work.
        """
        relation_positions, lengths = self.fusion_encoder.embeddings.sequence_layout(entities, heads, tails)
        buckets = length_buckets(lengths)
        max_width = max(width for _, width in buckets)
        rows, input_rows, attention_mask, _ = self.fusion_encoder.embeddings(
            entities, heads, relations, tails, sequence_length=max_width
        )
        return_token_states = return_token_states or self.fusion_encoder.records_layer_outputs(**kwargs)
        first_layer = self.fusion_encoder.layers[0]
        # A checkpointed first layer replays its forward in the backward pass, so the projections of the distinct rows
        # would have to be kept until then: three tensors of the rows' size, more than the padded inputs it keeps
        # instead (the rows are about half the padded positions).
        checkpointed = first_layer.gradient_checkpointing and first_layer.training and torch.is_grad_enabled()
        projected_rows = None
        if not (return_token_states or checkpointed):
            projected_rows = self.fusion_encoder.project_rows(rows)
        pooled, relation_embeds, passes = [], [], []
        for bucket, width in buckets:
            bucket_rows, bucket_mask = input_rows[bucket, :width], attention_mask[bucket, :width]
            # Y and R are all the objectives read: without token states, the last layer computes those two alone.
            read_positions = torch.stack([torch.zeros_like(bucket), relation_positions[bucket]], 1)
            output_positions = None if return_token_states else read_positions
            if projected_rows is None:
                inputs = {"inputs_embeds": F.embedding(bucket_rows, rows)}
            else:
                inputs = {"projected_rows": projected_rows, "input_rows": bucket_rows}
            output = self.fusion_encoder(
                **inputs, attention_mask=bucket_mask, output_positions=output_positions, **kwargs
            )
            read = output.last_hidden_state
            if return_token_states:
                read = read.gather(1, read_positions.unsqueeze(-1).expand(-1, -1, read.shape[-1]))
            pooled.append(read[:, 0])
            relation_embeds.append(read[:, 1])
            passes.append(output)
        # The buckets partition the sequences: concatenating them and indexing with the inverse permutation restores
        # the input order (with gradient).
        input_order = torch.argsort(torch.cat([bucket for bucket, _ in buckets]))

        def in_input_order(pieces: list[torch.Tensor], sequence_dims: tuple[int, ...] = ()) -> torch.Tensor:
            padded = []
            for piece in pieces:
                padding = []
                for dim in reversed(range(1, piece.dim())):
                    padding += [0, max_width - piece.shape[dim] if dim in sequence_dims else 0]
                padded.append(F.pad(piece, padding))
            return torch.cat(padded)[input_order]

        hidden_states = attentions = last_hidden_state = token_mask = None
        if passes[0].hidden_states is not None:
            hidden_states = tuple(
                in_input_order([p.hidden_states[layer] for p in passes], (1,))
                for layer in range(len(passes[0].hidden_states))
            )
        if passes[0].attentions is not None:
            attentions = tuple(
                in_input_order([p.attentions[layer] for p in passes], (2, 3))
                for layer in range(len(passes[0].attentions))
            )
        if return_token_states or hidden_states is not None or attentions is not None:
            last_hidden_state = in_input_order([p.last_hidden_state for p in passes], (1,))
            token_mask = (torch.arange(max_width, device=lengths.device) < lengths.unsqueeze(1)).long()
        return KnowledgeFusionOutput(
            pooler_output=in_input_order(pooled),
            relation_embeds=in_input_order(relation_embeds),
            sequences=torch.stack([heads, relations, tails], dim=1),
            relation_positions=relation_positions,
            last_hidden_state=last_hidden_state,
            attention_mask=token_mask,
            hidden_states=hidden_states,
            attentions=attentions,
        )

    def encode_entities(self, entities: EntityFeatures, slots: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """
        The entity representation `Y(-,-,e)`: the fusion encoder's output for the sequence holding the entity alone.

        Args:
            entities (`EntityFeatures`): from [`~KnowledgeCLIPModel.encode_entity_features`].
            slots (`torch.LongTensor` of shape `(num_slots,)`, *optional*): the entity slots to encode (texts first,
                then images); every entity when `None`.

        Returns:
            `torch.Tensor` of shape `(num_slots, fusion_hidden_size)`.
        """
        if slots is None:
            slots = torch.arange(entities.tokens.shape[0], device=entities.tokens.device)
        return self.fuse(entities, *masked_sequences(tails=slots), **kwargs).pooler_output

    def encode_queries(self, entities: EntityFeatures, queries: torch.Tensor, **kwargs) -> torch.Tensor:
        """
        The query representation `Y(h, r, -)` of `(head slot, relation row)` pairs, to compare with the entity
        representations of candidate tails (link prediction).

        Args:
            entities (`EntityFeatures`): from [`~KnowledgeCLIPModel.encode_entity_features`], relations included.
            queries (`torch.LongTensor` of shape `(num_queries, 2)`): head entity slot and relation row of each query.

        Returns:
            `torch.Tensor` of shape `(num_queries, fusion_hidden_size)`.
        """
        sequences = masked_sequences(heads=queries[:, 0], relations=queries[:, 1])
        return self.fuse(entities, *sequences, **kwargs).pooler_output

    def predict_relations(self, entities: EntityFeatures, pairs: torch.Tensor, **kwargs) -> torch.Tensor:
        """
        Relation logits (the E2R head on `R(h, -, t)`) for `(head slot, tail slot)` pairs.

        Args:
            entities (`EntityFeatures`): from [`~KnowledgeCLIPModel.encode_entity_features`].
            pairs (`torch.LongTensor` of shape `(num_pairs, 2)`): head and tail entity slots.

        Returns:
            `torch.Tensor` of shape `(num_pairs, num_relations)`, classes in `config.relation_vocab` order.
        """
        sequences = masked_sequences(heads=pairs[:, 0], tails=pairs[:, 1])
        return self.relation_head(self.fuse(entities, *sequences, **kwargs).relation_embeds)

    def get_joint_features(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_text_pairs: torch.Tensor | None = None,
        relation_features: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        return_token_states: bool = False,
        **kwargs,
    ) -> KnowledgeFusionOutput:
        """
        The joint representation of (image, text) pairs through the fusion encoder: the sequence `X(i, -, t)` with the
        image's tokens in the head slot, the text's tokens in the tail slot and the relation slot masked (Eq. 6), read
        at index 0 (Eq. 4). This is the sequence the E2R objective pre-trains on every image-text triplet (it reads
        `R(h, -, t)` from it), so a pre-trained fusion encoder already relates the two; see docs/concepts.md. With
        `relation_features` the relation slot holds that vector instead (a task model's learned task token).

        Each image and each text goes through its tower once, however many pairs it is in.

        Args:
            input_ids, attention_mask (`torch.Tensor` of shape `(num_texts, seq_len)`): the tokenised texts.
            pixel_values (`torch.Tensor` of shape `(num_images, 3, H, W)`): the images.
            image_text_pairs (`torch.LongTensor` of shape `(num_pairs, 2)`, *optional*): `(image row, text row)` of each
                pair; row `k` with row `k` when `None` (then `num_images` must equal `num_texts`).
            relation_features (`torch.Tensor` of shape `(fusion_hidden_size,)`, *optional*): the feature of every pair's
                relation slot (it gets the relation role encoding, as a relation would); masked when `None`. A zero
                vector gives exactly the masked sequence.
            interpolate_pos_encoding (`bool`, *optional*, defaults to `False`): for images at another resolution.
            return_token_states (`bool`, *optional*, defaults to `False`): also return every token's output; the image
                tokens of pair `k` are at positions `1 .. relation_positions[k] - 1`, its text tokens after
                `relation_positions[k]`.

        Returns:
            [`KnowledgeFusionOutput`]: `pooler_output` `(num_pairs, fusion_hidden_size)` is the joint representation,
            rows in pair order.
        """
        num_texts, num_images = input_ids.shape[0], pixel_values.shape[0]
        if image_text_pairs is None:
            if num_images != num_texts:
                raise ValueError(
                    f"{num_images} images and {num_texts} texts: pass image_text_pairs to say which goes with which."
                )
            rows = torch.arange(num_texts, device=input_ids.device)
            image_text_pairs = torch.stack([rows, rows], dim=1)
        entities = self.encode_entity_features(
            entity_input_ids=input_ids,
            entity_attention_mask=attention_mask,
            entity_pixel_values=pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        return self.fuse_image_text_pairs(
            entities, image_text_pairs, relation_features, return_token_states=return_token_states, **kwargs
        )

    def fuse_image_text_pairs(
        self,
        entities: EntityFeatures,
        image_text_pairs: torch.Tensor,
        relation_features: torch.Tensor | None = None,
        return_token_states: bool = False,
        **kwargs,
    ) -> KnowledgeFusionOutput:
        """
        [`~KnowledgeCLIPModel.get_joint_features`] on entity features already computed: for callers that also read
        the towers' embeddings (`entities.text_embeds`, `entities.image_embeds`) of the same pass.

        Args:
            entities (`EntityFeatures`): from [`~KnowledgeCLIPModel.encode_entity_features`] with the texts as
                `entity_input_ids` and the images as `entity_pixel_values` (texts take the first slots).
            image_text_pairs (`torch.LongTensor` of shape `(num_pairs, 2)`): `(image row, text row)` of each pair.
            relation_features, return_token_states: as in `get_joint_features`.
        """
        relations = None
        if relation_features is not None:  # the one relation row every pair's relation slot reads
            entities = replace(entities, relation_tokens=relation_features.view(1, -1))
            relations = torch.zeros_like(image_text_pairs[:, 0])
        num_texts = entities.text_embeds.shape[0]
        sequences = masked_sequences(
            heads=image_text_pairs[:, 0] + num_texts, relations=relations, tails=image_text_pairs[:, 1]
        )
        return self.fuse(entities, *sequences, return_token_states=return_token_states, **kwargs)

    # ----------------------------------------------------------------------------------------------------------------
    # Forward
    # ----------------------------------------------------------------------------------------------------------------
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        entity_input_ids: torch.LongTensor | None = None,
        entity_attention_mask: torch.Tensor | None = None,
        entity_pixel_values: torch.Tensor | None = None,
        entity_ids: torch.LongTensor | None = None,
        entity_input_hashes: torch.LongTensor | None = None,
        relation_input_ids: torch.LongTensor | None = None,
        relation_attention_mask: torch.Tensor | None = None,
        relation_labels: torch.LongTensor | None = None,
        triplets: torch.LongTensor | None = None,
        graph_edges: torch.LongTensor | None = None,
        teacher_image_embeds: torch.Tensor | None = None,
        teacher_text_embeds: torch.Tensor | None = None,
        teacher_logit_scale: torch.Tensor | float | None = None,
        **kwargs,
    ) -> KnowledgeCLIPOutput:
        r"""
        Args:
            input_ids, pixel_values, attention_mask, position_ids, interpolate_pos_encoding:
                Plain CLIP inputs: without `triplets` the model is exactly `CLIPModel`.
            return_loss (`bool`, *optional*):
                Return the objectives: CLIP's contrastive loss for plain inputs, Eq. 14 for a knowledge batch (through
                [`KnowledgeCLIPLoss`] on this process's batch; the trainer builds its own with a gather).
            entity_input_ids, entity_attention_mask (`torch.Tensor` of shape `(num_text_entities, seq_len)`):
                The batch's unique text entities (slots `0 .. num_text_entities - 1`).
            entity_pixel_values (`torch.Tensor` of shape `(num_image_entities, 3, H, W)`):
                The batch's unique image entities (the slots after the texts).
            entity_ids (`torch.LongTensor` of shape `(num_entities,)`):
                KG ids of the entity slots, for false-negative masking (defaults to the slot index).
            entity_input_hashes (`torch.LongTensor` of shape `(num_entities,)`, *optional*):
                Hashes of the entity slots' tower inputs, which the processor adds to every knowledge batch; not read
                here (they key the trainer's `TeacherEmbeddingCache`), accepted so that `model(**batch)` works.
            relation_input_ids, relation_attention_mask (`torch.Tensor` of shape `(num_batch_relations, seq_len)`):
                The batch's unique relation texts.
            relation_labels (`torch.LongTensor` of shape `(num_batch_relations,)`):
                Index of each relation row in `config.relation_vocab` (E2R targets).
            triplets (`torch.LongTensor` of shape `(num_triplets, 3)`):
                `(head slot, relation row, tail slot)` of each triplet.
            graph_edges (`torch.LongTensor` of shape `(num_edges, 3)`, *optional*):
                Sampled in-edges `(head slot, relation row, tail slot)` for G2E message passing.
            teacher_image_embeds, teacher_text_embeds, teacher_logit_scale (*optional*):
                The frozen teacher's projected embeddings of the batch's image and text entities and its
                `logit_scale`, for the KD term (`knowledge_clip.training.teacher_embeddings` computes them).
        """
        if triplets is None:
            clip_output = super().forward(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=attention_mask,
                position_ids=position_ids,
                return_loss=return_loss,
                interpolate_pos_encoding=interpolate_pos_encoding,
                **kwargs,
            )
            return KnowledgeCLIPOutput(**clip_output)

        entities = self.encode_entity_features(
            entity_input_ids,
            entity_attention_mask,
            entity_pixel_values,
            relation_input_ids,
            relation_attention_mask,
            interpolate_pos_encoding,
        )
        num_entities = entities.tokens.shape[0]
        edges = graph_edges if graph_edges is not None else triplets.new_zeros(0, 3)

        # Every fusion sequence the objectives need, each computed once: Y(-,-,e) for every entity, Y(h,r,-) for
        # every distinct (head, relation) query, R(h,-,t) for every distinct (head, tail) pair of the triplets (E2R)
        # and of the graph edges (G2E), where an edge that is also a triplet reuses the triplet's pass. One
        # `torch.unique` over `(kind, a, b)` rows finds them all (one host sync, for its data-dependent size): sorted,
        # the entities come first in slot order, then the queries, then the pairs.
        num_triplets = triplets.shape[0]
        slots = torch.arange(num_entities, device=triplets.device)
        entity_rows = F.pad(slots.unsqueeze(1), (1, 1))  # (0, e, 0)
        query_rows = F.pad(triplets[:, :2], (1, 0), value=1)  # (1, h, r)
        pair_rows = F.pad(torch.cat([triplets[:, [0, 2]], edges[:, [0, 2]]]), (1, 0), value=2)  # (2, h, t)
        rows = torch.cat([entity_rows, query_rows, pair_rows])
        sequences, sequence_of_row = torch.unique(rows, dim=0, return_inverse=True)
        kind, first, second = sequences.unbind(dim=1)
        masked = torch.full_like(first, MASKED)
        fusion_output = self.fuse(
            entities,
            torch.where(kind == 0, masked, first),
            torch.where(kind == 1, second, masked),
            torch.where(kind == 0, first, torch.where(kind == 2, second, masked)),
            **kwargs,
        )
        entity_embeds = fusion_output.pooler_output[:num_entities]
        query_embeds = fusion_output.pooler_output[sequence_of_row[num_entities : num_entities + num_triplets]]
        pair_relation_embeds = fusion_output.relation_embeds[sequence_of_row[num_entities + num_triplets :]]
        triplet_relation_embeds = pair_relation_embeds[:num_triplets]
        relation_logits = self.relation_head(triplet_relation_embeds)

        graph_embeds = None
        if graph_edges is not None:
            edge_relation_embeds = pair_relation_embeds[num_triplets:]
            graph_embeds = self.graph_head(entity_embeds, edge_relation_embeds, edges[:, 0], edges[:, 2])

        text_embeds = F.normalize(entities.text_embeds, dim=-1)
        image_embeds = F.normalize(entities.image_embeds, dim=-1)
        logits_per_text = text_embeds @ image_embeds.T * self.logit_scale.exp()
        output = KnowledgeCLIPOutput(
            logits_per_image=logits_per_text.T,
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=entities.text_model_output,
            vision_model_output=entities.vision_model_output,
            entity_embeds=entity_embeds,
            query_embeds=query_embeds,
            relation_embeds=triplet_relation_embeds,
            relation_logits=relation_logits,
            graph_embeds=graph_embeds,
            fusion_model_output=fusion_output,
        )
        if return_loss:
            if relation_labels is None:
                raise ValueError(
                    "return_loss=True on a knowledge batch needs relation_labels (the processor adds them)."
                )
            losses = KnowledgeCLIPLoss(self.config)(
                output,
                self.logit_scale,
                triplets,
                relation_labels,
                entity_ids=entity_ids,
                graph_edges=graph_edges,
                teacher_text_embeds=teacher_text_embeds,
                teacher_image_embeds=teacher_image_embeds,
                teacher_logit_scale=teacher_logit_scale,
            )
            # ModelOutput keys follow the order fields are first set: rebuilt so that `loss` comes first, as in
            # every transformers output.
            output = KnowledgeCLIPOutput(**losses, **{k: v for k, v in output.items()})
        return output

    def _concat_texts(
        self, *texts: tuple[torch.Tensor | None, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacks several tokenised text batches into one tower pass, right-padding them to a common length."""
        present = [(ids, mask if mask is not None else torch.ones_like(ids)) for ids, mask in texts if ids is not None]
        width = max(ids.shape[1] for ids, _ in present)
        pad_id = self.config.text_config.pad_token_id or 0
        input_ids = torch.cat([F.pad(ids, (0, width - ids.shape[1]), value=pad_id) for ids, _ in present])
        attention_mask = torch.cat([F.pad(mask, (0, width - mask.shape[1])) for _, mask in present])
        return input_ids, attention_mask

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` maps the class to one auto class only (AutoModel). The zero-shot pipeline loads
        # through AutoModelForZeroShotImageClassification, so name it in `auto_map` too; `save_pretrained` adds the
        # AutoConfig/AutoModel entries beside it.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModelForZeroShotImageClassification": f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ----------------------------------------------------------------------------------------------------------------
    # CLIP in and out
    # ----------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_clip(cls, clip: "str | CLIPModel", **config_overrides) -> "KnowledgeCLIPModel":
        """
        Continues a CLIP checkpoint as Knowledge-CLIP: the towers, projections and `logit_scale` are loaded unchanged
        and the knowledge modules are freshly initialised.

        Args:
            clip (`str`, `os.PathLike` or `CLIPModel`):
                A Hub id or directory of a CLIP checkpoint, or a loaded `CLIPModel`.
            **config_overrides:
                Fields of [`KnowledgeCLIPConfig`], e.g. `relation_vocab=[...]`,
                `fusion_encoder_config={"hidden_size": 512}`.
        """
        if isinstance(clip, CLIPModel):
            config = KnowledgeCLIPConfig.from_clip_config(clip.config, **config_overrides)
            model = cls(config).to(device=clip.device, dtype=clip.dtype)
            missing, unexpected = model.load_state_dict(clip.state_dict(), strict=False)
            if unexpected:
                raise ValueError(f"Weights of the CLIP model that KnowledgeCLIPModel has no place for: {unexpected}")
            not_knowledge = [k for k in missing if not k.startswith(_KNOWLEDGE_PREFIXES)]
            if not_knowledge:
                raise ValueError(f"CLIP weights missing from the source model: {not_knowledge}")
            return model
        from transformers import CLIPConfig

        config = KnowledgeCLIPConfig.from_clip_config(CLIPConfig.from_pretrained(clip), **config_overrides)
        return cls.from_pretrained(clip, config=config)

    def to_clip(self) -> CLIPModel:
        """
        A stock `CLIPModel` holding this model's towers, projections and `logit_scale`: its image and text features
        equal this model's exactly, and it loads anywhere without custom code.
        """
        clip = CLIPModel(self.config.to_clip_config()).to(device=self.device, dtype=self.dtype)
        clip_weights = {k: v for k, v in self.state_dict().items() if not k.startswith(_KNOWLEDGE_PREFIXES)}
        missing, unexpected = clip.load_state_dict(clip_weights, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"CLIP export mismatch: missing {missing}, unexpected {unexpected}")
        return clip

    def save_clip_pretrained(self, save_directory, processor=None, **kwargs) -> CLIPModel:
        """
        Saves `to_clip()` (and, when given, the CLIP processor `processor.to_clip_processor()`) to `save_directory`
        as a stock CLIP checkpoint with no custom code. Returns the exported model.
        """
        clip = self.to_clip()
        clip.save_pretrained(save_directory, **kwargs)
        if processor is not None:
            clip_processor = processor.to_clip_processor() if hasattr(processor, "to_clip_processor") else processor
            clip_processor.save_pretrained(save_directory)
            # Older clients look for preprocessor_config.json, which transformers 5's ProcessorMixin no longer writes.
            clip_processor.image_processor.save_pretrained(save_directory)
        return clip


# --------------------------------------------------------------------------------------------------------------------
# Downstream task models
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class KnowledgeCLIPClassificationOutput(ModelOutput):
    r"""
    Output of the downstream task models ([`KnowledgeCLIPForQuestionAnswering`],
    [`KnowledgeCLIPForImageTextClassification`]).

    Args:
        loss (`torch.Tensor` of shape `()`, *optional*, returned when `labels` are given):
            Binary cross-entropy against soft answer scores (VQA) or cross-entropy against class labels.
        logits (`torch.Tensor` of shape `(batch_size, num_labels)`):
            Scores of each answer (VQA: independent sigmoids) or class (softmax).
        joint_embeds (`torch.Tensor` of shape `(batch_size, num_images, fusion_hidden_size)`):
            The joint representation `Y(image, -, text)` of each of the example's image-text pairs.
        fusion_model_output ([`KnowledgeFusionOutput`]):
            The fusion encoder's output for every pair, rows `batch_size x num_images` in example-major order.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    joint_embeds: torch.Tensor | None = None
    fusion_model_output: KnowledgeFusionOutput | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in (self[k] for k in self.keys()))


class KnowledgeCLIPPreTrainedModel(PreTrainedModel):
    """
    Base of the task models: a [`KnowledgeCLIPModel`] under `knowledge_clip` plus a task head.

    `from_pretrained` reads a Knowledge-CLIP checkpoint (its pre-trained fusion encoder is kept), a task checkpoint,
    or a plain CLIP checkpoint, whose towers are loaded into a fresh Knowledge-CLIP: the baseline every comparison
    needs. Config fields given as keyword arguments (`num_labels`, `id2label`, `label2id`, `num_images`,
    `joint_relation`, `fusion_encoder_config`, ...) override the checkpoint's.

    With `config.joint_relation == "task_token"` the model has a learned `task_token` `(fusion_hidden_size,)` in the
    relation slot of every joint sequence; it starts at zero, i.e. at the masked reading. `config.task_head_inputs`
    says what the classifier reads per pair (`head_width` features).
    """

    config: KnowledgeCLIPConfig
    base_model_prefix = "knowledge_clip"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings", "KnowledgeFusionLayer"]

    def __init__(self, config: KnowledgeCLIPConfig):
        super().__init__(config)
        self.knowledge_clip = KnowledgeCLIPModel(config)
        task_token = None
        if config.joint_relation == "task_token":
            task_token = nn.Parameter(torch.zeros(config.fusion_encoder_config.hidden_size))
        self.register_parameter("task_token", task_token)

    @property
    def head_width(self) -> int:
        """Features the classifier reads per image-text pair: `Y` (fusion width), and `[u, v, u ⊙ v]` with towers."""
        width = self.config.fusion_encoder_config.hidden_size
        return width + (3 * self.config.projection_dim if self.config.task_head_inputs == "joint_and_towers" else 0)

    @property
    def classifier_width(self) -> int:
        """Features the classifier reads per example: `head_width` for each of its `config.num_images` pairs."""
        return self.head_width * self.config.num_images

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, KnowledgeCLIPPreTrainedModel) and module.task_token is not None:
            init.zeros_(module.task_token)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        if config is None:
            from transformers import CLIPConfig

            hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            config_dict, _ = CLIPConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            if config_dict.get("model_type") == "clip":
                overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_OVERRIDE_KEYS}
                config = KnowledgeCLIPConfig.from_clip_config(config_dict, **overrides)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> KnowledgeCLIPClassificationOutput:
        r"""
        Each example's images with its text through the fusion encoder, the joint representations of an example
        concatenated in image order and classified by the task head.

        Args:
            input_ids, attention_mask (`torch.Tensor` of shape `(batch_size, seq_len)`): the tokenised texts
                (questions, hypotheses, statements).
            pixel_values (`torch.Tensor` of shape `(batch_size, num_images, 3, H, W)`): the images of each example, in
                order (NLVR2: left, right); `(batch_size, 3, H, W)` when `config.num_images == 1`.
            labels (`torch.Tensor`, *optional*): the task's targets, as its `task_loss` documents them.
        """
        batch_size = input_ids.shape[0]
        if pixel_values.dim() == 4:  # one image per example
            pixel_values = pixel_values.unsqueeze(1)
        num_images = pixel_values.shape[1]
        if num_images != self.config.num_images or pixel_values.shape[0] != batch_size:
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)} for {batch_size} texts: expected "
                f"({batch_size}, {self.config.num_images}, 3, H, W) (config.num_images = {self.config.num_images})."
            )
        entities = self.knowledge_clip.encode_entity_features(
            entity_input_ids=input_ids,
            entity_attention_mask=attention_mask,
            entity_pixel_values=pixel_values.flatten(0, 1),
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        examples = torch.arange(batch_size, device=input_ids.device).repeat_interleave(num_images)
        image_rows = torch.arange(batch_size * num_images, device=input_ids.device)
        fusion_output = self.knowledge_clip.fuse_image_text_pairs(
            entities, torch.stack([image_rows, examples], dim=1), self.task_token, **kwargs
        )
        joint = fusion_output.pooler_output
        head_inputs = joint
        if self.config.task_head_inputs == "joint_and_towers":
            # Scaled to unit RMS per feature, the scale of the layer-normed `Y`: unit vectors alone would enter the
            # classifier about sqrt(projection_dim) times weaker than `Y`.
            scale = self.config.projection_dim**0.5
            image = F.normalize(entities.image_embeds, dim=-1) * scale
            text = F.normalize(entities.text_embeds, dim=-1)[examples] * scale
            head_inputs = torch.cat([joint, image, text, image * text], dim=-1)
        logits = self.classifier(head_inputs.view(batch_size, -1))
        return KnowledgeCLIPClassificationOutput(
            loss=self.task_loss(logits, labels) if labels is not None else None,
            logits=logits,
            joint_embeds=joint.view(batch_size, num_images, -1),
            fusion_model_output=fusion_output,
        )

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The task's loss of `logits` `(batch_size, num_labels)` against `labels`."""
        raise NotImplementedError(f"{type(self).__name__} is not a task model: it has no task loss.")


def _classifier_mlp(in_features: int, hidden_features: int, num_labels: int) -> nn.Sequential:
    """ViLT's task head: Linear, LayerNorm, GELU, Linear."""
    return nn.Sequential(
        nn.Linear(in_features, hidden_features),
        nn.LayerNorm(hidden_features),
        nn.GELU(),
        nn.Linear(hidden_features, num_labels),
    )


class KnowledgeCLIPForQuestionAnswering(KnowledgeCLIPPreTrainedModel):
    r"""
    Knowledge-CLIP for visual question answering, as the paper fine-tunes it on VQAv2 (and as ViLT does): the joint
    representation of (image, question) through the fusion encoder, then an MLP classifier over the answer vocabulary
    (`config.id2label`), trained as multi-label classification against soft scores (the official VQA accuracy of
    each answer), so that an answer three of the ten annotators gave counts fully. `forward` takes one image per
    question and `labels` of shape `(batch_size, num_labels)`: the soft score of every answer of the vocabulary (0
    for answers nobody gave).
    """

    def __init__(self, config: KnowledgeCLIPConfig):
        super().__init__(config)
        self.classifier = _classifier_mlp(
            self.classifier_width, config.fusion_encoder_config.hidden_size * 2, config.num_labels
        )
        self.post_init()

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy with logits against the soft scores, summed over answers and averaged over questions
        (ViLT's scaling)."""
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)) * labels.shape[1]


class KnowledgeCLIPForImageTextClassification(KnowledgeCLIPPreTrainedModel):
    r"""
    Knowledge-CLIP for classifying a text against `config.num_images` images: visual entailment (SNLI-VE, one image,
    3 classes) and NLVR2 (two images, True/False). Each image forms a joint representation with the text through the
    fusion encoder; the representations of an example are concatenated in image order and classified by an MLP, as
    ViLT's `ViltForImagesAndTextClassification` does. `forward`'s `labels` are class indices `(batch_size,)`
    (`config.id2label`).
    """

    def __init__(self, config: KnowledgeCLIPConfig):
        super().__init__(config)
        self.classifier = _classifier_mlp(self.classifier_width, self.classifier_width, config.num_labels)
        self.post_init()

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the class indices."""
        return F.cross_entropy(logits, labels)


# Keyword arguments of `from_pretrained` that locate the checkpoint, and those that override config fields when a
# plain CLIP config is turned into a Knowledge-CLIP one.
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
_CONFIG_OVERRIDE_KEYS = {field.name for field in fields(KnowledgeCLIPConfig)} | {"num_labels", "id2label", "label2id"}

_KNOWLEDGE_PREFIXES = ("text_to_fusion.", "vision_to_fusion.", "fusion_encoder.", "relation_head.", "graph_head.")

__all__ = [
    "KnowledgeCLIPClassificationOutput",
    "KnowledgeCLIPForImageTextClassification",
    "KnowledgeCLIPForQuestionAnswering",
    "KnowledgeCLIPModel",
    "KnowledgeCLIPOutput",
    "KnowledgeFusionModel",
    "KnowledgeFusionOutput",
    "KnowledgeFusionPreTrainedModel",
    "KnowledgeCLIPPreTrainedModel",
    "masked_sequences",
]
