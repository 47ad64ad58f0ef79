# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Knowledge reasoning with a trained [`KnowledgeCLIPModel`]: complete triplets, rank relations, score triplets.

One triplet score serves every question: `score(h, r, t) = cos(Y(h, r, -), Y(-, -, t))`, the similarity that the E2E
objective (Eq. 8 of Pan et al., 2022) trains between the query with the tail masked and the tail's entity
representation. Ranking tails for `(h, r, ?)` and ranking heads for `(?, r, t)` both rank by this score; ranking
relations for `(h, ?, t)` uses the E2R classifier on `R(h, -, t)` (Eq. 10) over `config.relation_vocab`.

Entities are texts (`str`) or images (`PIL.Image.Image`, any mode); relations are free text for `rank_tails`,
`rank_heads` and `score_triplets` (the text tower reads them), and come from the relation vocabulary for
`rank_relations`.

This module imports only flat siblings, so it travels with `pipeline_knowledge_clip.py` when a pipeline is saved as
custom code.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from .image_conversion import to_rgb
from .modeling_knowledge_clip import EntityFeatures
from .processing_knowledge_clip import Entity, entity_key

__all__ = [
    "KnowledgeReasoner",
    "encode_entity_batch",
    "entity_embeddings",
    "is_knowledge_model",
    "query_embeddings",
    "relation_logits",
]


def is_knowledge_model(model) -> bool:
    """Whether `model` has the fusion encoder of Knowledge-CLIP (a plain `CLIPModel` has only the two towers)."""
    return all(hasattr(model, name) for name in ("encode_entity_features", "fuse", "relation_head"))


def encode_entity_batch(
    model, processor, entities: Sequence[Entity], relations: Sequence[str] = ()
) -> tuple[EntityFeatures, torch.Tensor]:
    """
    Runs the towers once over a batch of entities (and relation texts) and returns their fusion-ready features.

    Args:
        model ([`KnowledgeCLIPModel`]): The model.
        processor ([`KnowledgeCLIPProcessor`] or `CLIPProcessor`): Its tokenizer and image processor are used.
        entities (`Sequence[str | PIL.Image.Image]`): At least one entity; texts and images may be mixed.
        relations (`Sequence[str]`, *optional*): Relation texts; relation row `k` of the features is `relations[k]`.

    Returns:
        `tuple[EntityFeatures, torch.Tensor]`: the features, and the entity slot of each input entity (the model
        puts texts first, then images).
    """
    if not entities:
        raise ValueError("encode_entity_batch needs at least one entity.")
    text_positions = [i for i, entity in enumerate(entities) if isinstance(entity, str)]
    image_positions = [i for i, entity in enumerate(entities) if isinstance(entity, Image.Image)]
    if len(text_positions) + len(image_positions) != len(entities):
        bad = next(i for i, e in enumerate(entities) if not isinstance(e, (str, Image.Image)))
        raise TypeError(f"entities[{bad}] must be a str or a PIL.Image.Image, got {type(entities[bad]).__name__}.")
    slots = torch.empty(len(entities), dtype=torch.long)
    slots[text_positions + image_positions] = torch.arange(len(entities))
    device = model.logit_scale.device
    inputs = {}
    if text_positions:
        texts = processor.tokenizer(
            [entities[i] for i in text_positions], padding=True, truncation=True, return_tensors="pt"
        )
        inputs["entity_input_ids"] = texts["input_ids"].to(device)
        inputs["entity_attention_mask"] = texts["attention_mask"].to(device)
    if image_positions:
        pixel_values = processor.image_processor([to_rgb(entities[i]) for i in image_positions], return_tensors="pt")
        inputs["entity_pixel_values"] = pixel_values["pixel_values"].to(device=device, dtype=model.dtype)
    if relations:
        relation_tokens = processor.tokenizer(list(relations), padding=True, truncation=True, return_tensors="pt")
        inputs["relation_input_ids"] = relation_tokens["input_ids"].to(device)
        inputs["relation_attention_mask"] = relation_tokens["attention_mask"].to(device)
    return model.encode_entity_features(**inputs), slots.to(device)


def entity_embeddings(model, features: EntityFeatures, slots: torch.Tensor) -> torch.Tensor:
    """L2-normalised entity representations `Y(-, -, e)` of the given entity slots, `(len(slots), hidden)`."""
    return F.normalize(model.encode_entities(features, slots).float(), dim=-1)


def query_embeddings(
    model, features: EntityFeatures, head_slots: torch.Tensor, relation_rows: torch.Tensor
) -> torch.Tensor:
    """L2-normalised query representations `Y(h, r, -)` of `(head slot, relation row)` pairs, `(num_pairs, hidden)`."""
    queries = torch.stack([head_slots, relation_rows], dim=1)
    return F.normalize(model.encode_queries(features, queries).float(), dim=-1)


def relation_logits(
    model, features: EntityFeatures, head_slots: torch.Tensor, tail_slots: torch.Tensor
) -> torch.Tensor:
    """E2R logits over `config.relation_vocab` from `R(h, -, t)` of `(head slot, tail slot)` pairs."""
    return model.predict_relations(features, torch.stack([head_slots, tail_slots], dim=1)).float()


class KnowledgeReasoner:
    r"""
    Asks a trained [`KnowledgeCLIPModel`] about triplets whose entities are texts or images.

    Args:
        model ([`KnowledgeCLIPModel`]):
            A Knowledge-CLIP model (a plain `CLIPModel` has no fusion encoder and is refused).
        processor ([`KnowledgeCLIPProcessor`]):
            Its processor; the tokenizer reads entities and relations, the image processor reads images.
        batch_size (`int`, *optional*, defaults to 64):
            Entities (or triplets) encoded per forward pass.

    Example (scores depend on the checkpoint):

    ```python
    >>> from knowledge_clip.reasoning import KnowledgeReasoner
    >>> reasoner = KnowledgeReasoner(model, processor)
    >>> reasoner.rank_tails("square", "is a", ["shape", "colour", "animal"], top_k=2)
    [{'tail': 'shape', 'score': 0.83}, {'tail': 'colour', 'score': 0.41}]
    >>> reasoner.rank_relations("fire truck", "red", top_k=1)
    [{'relation': 'has property', 'score': 0.92}]
    >>> reasoner.score_triplets([("square", "is a", "shape"), ("square", "is a", "animal")])
    [0.83, 0.12]
    ```
    """

    def __init__(self, model, processor, batch_size: int = 64):
        if not is_knowledge_model(model):
            raise TypeError(
                f"{type(model).__name__} has no fusion encoder: knowledge reasoning needs a KnowledgeCLIPModel."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.model = model
        self.processor = processor
        self.batch_size = batch_size

    @torch.no_grad()
    def rank_tails(
        self, head: Entity, relation: str, candidates: Sequence[Entity], top_k: int | None = None
    ) -> list[dict]:
        """
        Ranks candidate tails of `(head, relation, ?)` by `cos(Y(head, relation, -), Y(-, -, candidate))`.

        Args:
            head (`str` or `PIL.Image.Image`): The head entity.
            relation (`str`): The relation text.
            candidates (`Sequence[str | PIL.Image.Image]`): The candidate tails.
            top_k (`int`, *optional*): Return only the `top_k` best; all when None.

        Returns:
            `list[dict]`: `{"tail": candidate, "score": float}`, best first.
        """
        _check_candidates(candidates)
        self.model.eval()
        features, slots = encode_entity_batch(self.model, self.processor, [head], [relation])
        query = query_embeddings(self.model, features, slots, torch.zeros_like(slots))
        scores = []
        for chunk in self._chunks(candidates):
            features, slots = encode_entity_batch(self.model, self.processor, chunk)
            scores.append((entity_embeddings(self.model, features, slots) @ query.T)[:, 0])
        return _ranked(candidates, torch.cat(scores), top_k, "tail")

    @torch.no_grad()
    def rank_heads(
        self, tail: Entity, relation: str, candidates: Sequence[Entity], top_k: int | None = None
    ) -> list[dict]:
        """
        Ranks candidate heads of `(?, relation, tail)` by `cos(Y(candidate, relation, -), Y(-, -, tail))`: the mirror
        of [`~KnowledgeReasoner.rank_tails`], whose `relation`, `candidates` and `top_k` it takes, with one fusion
        pass per candidate, since the query changes with the head.

        Args:
            tail (`str` or `PIL.Image.Image`): The tail entity.

        Returns:
            `list[dict]`: `{"head": candidate, "score": float}`, best first.
        """
        _check_candidates(candidates)
        self.model.eval()
        target = entity_embeddings(self.model, *encode_entity_batch(self.model, self.processor, [tail]))
        scores = []
        for chunk in self._chunks(candidates):
            features, slots = encode_entity_batch(self.model, self.processor, chunk, [relation])
            scores.append((query_embeddings(self.model, features, slots, torch.zeros_like(slots)) @ target.T)[:, 0])
        return _ranked(candidates, torch.cat(scores), top_k, "head")

    @torch.no_grad()
    def rank_relations(self, head: Entity, tail: Entity, top_k: int | None = None) -> list[dict]:
        """
        Ranks the relations of the model's vocabulary for `(head, ?, tail)` with the E2R classifier on
        `R(head, -, tail)`.

        Args:
            head (`str` or `PIL.Image.Image`): The head entity.
            tail (`str` or `PIL.Image.Image`): The tail entity.
            top_k (`int`, *optional*): Return only the `top_k` best; all when None.

        Returns:
            `list[dict]`: `{"relation": str, "score": probability}`, best first (softmax over the vocabulary).
        """
        vocab = list(self.model.config.relation_vocab)
        if not vocab:
            raise ValueError("The model has an empty relation_vocab: it has no relation classifier to rank with.")
        self.model.eval()
        features, slots = encode_entity_batch(self.model, self.processor, [head, tail])
        probabilities = relation_logits(self.model, features, slots[:1], slots[1:]).softmax(dim=-1)[0]
        return _ranked(vocab, probabilities, top_k, "relation")

    @torch.no_grad()
    def score_triplets(self, triplets: Sequence[tuple[Entity, str, Entity]]) -> list[float]:
        """
        Scores `(head, relation, tail)` triplets by `cos(Y(head, relation, -), Y(-, -, tail))`, in [-1, 1].

        Args:
            triplets (`Sequence[tuple]`): Triplets of (entity, relation text, entity).

        Returns:
            `list[float]`: One score per triplet, in input order.
        """
        self.model.eval()
        scores = []
        for start in range(0, len(triplets), self.batch_size):
            chunk = triplets[start : start + self.batch_size]
            entities, entity_index, relations, relation_index = [], {}, [], {}
            rows = []
            for position, triplet in enumerate(chunk, start=start):
                if not isinstance(triplet, (tuple, list)) or len(triplet) != 3 or not isinstance(triplet[1], str):
                    raise ValueError(f"triplets[{position}] must be (entity, relation text, entity), got {triplet!r}.")
                head, relation, tail = triplet
                ends = []
                for entity, part in ((head, "head"), (tail, "tail")):
                    key = entity_key(entity, f"triplets[{position}] {part}")
                    ends.append(entity_index.setdefault(key, len(entities)))
                    if ends[-1] == len(entities):
                        entities.append(entity)
                rows.append((ends[0], relation_index.setdefault(relation, len(relations)), ends[1]))
                if rows[-1][1] == len(relations):
                    relations.append(relation)
            features, slots = encode_entity_batch(self.model, self.processor, entities, relations)
            index = torch.tensor(rows, dtype=torch.long, device=slots.device)
            queries = query_embeddings(self.model, features, slots[index[:, 0]], index[:, 1])
            targets = entity_embeddings(self.model, features, slots[index[:, 2]])
            scores.extend((queries * targets).sum(dim=-1).tolist())
        return scores

    def _chunks(self, items: Sequence) -> list[Sequence]:
        return [items[start : start + self.batch_size] for start in range(0, len(items), self.batch_size)]


def _check_candidates(candidates: Sequence[Entity]) -> None:
    if isinstance(candidates, (str, Image.Image)) or len(candidates) == 0:
        raise ValueError("candidates must be a non-empty list of entities (str or PIL.Image.Image).")


def _ranked(items: Sequence, scores: torch.Tensor, top_k: int | None, name: str) -> list[dict]:
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}.")
    order = torch.argsort(scores.cpu(), descending=True, stable=True)[:top_k].tolist()
    return [{name: items[i], "score": float(scores[i])} for i in order]
