# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Knowledge metrics of the fusion encoder on held-out triplets: filtered link prediction (MRR, Hits@k) and relation
prediction (E2R accuracy).

Scoring. One score serves both link-prediction directions, the one E2E trains (Eq. 8 of Pan et al., 2022):
`score(h, r, t) = cos(Y(h, r, -), Y(-, -, t))`.

- Tail prediction `(h, r, ?)` ranks every candidate `t'` by `cos(Y(h, r, -), Y(-, -, t'))`: one query pass per
  distinct `(h, r)` and one entity pass per candidate.
- Head prediction `(?, r, t)` ranks every candidate `h'` by `cos(Y(h', r, -), Y(-, -, t))`. The model has no
  "`Y(-, r, t)`" query it was trained to match against heads, so this inverse direction scores each candidate head
  with its own query: one fusion pass per candidate and per relation of the held-out triplets. Those passes run
  entity chunk by entity chunk (the towers read each chunk once for all relations) and are reduced to rank counts
  at once, so memory stays `O(num_entities x hidden)`.

Filtered setting (Bordes et al., 2013): when ranking the answer of a query, every other candidate that also forms a
known true triplet with it (by default, any triplet of the graph: train, valid or test) is left out. Ties count
against the model.
"""

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from ..graph import KnowledgeGraph, ViewKind
from ..reasoning import encode_entity_batch, entity_embeddings, is_knowledge_model, query_embeddings, relation_logits
from .encoding import ViewImage
from .metrics import count_at_least, load_metric, unavailable

ENTITY_VIEWS = ("first", "text", "image")

NO_FUSION_ENCODER = (
    "{model} has no fusion encoder; link prediction and relation prediction need a KnowledgeCLIPModel "
    "(a plain CLIP checkpoint is evaluated on zero-shot classification, retrieval and probes only)."
)


def graph_entity(graph: KnowledgeGraph, entity: int, entity_view: str = "first"):
    """
    The entity as the model reads it: the text of a TEXT view, or the pixels of an IMAGE / REGION view.

    Args:
        graph ([`KnowledgeGraph`]): The graph.
        entity (`int`): The entity id.
        entity_view (`str`, *optional*, defaults to `"first"`): Which view shows an entity that has several:
            `"first"` (the first view added by the loader), `"text"` (the first TEXT view, else the first view) or
            `"image"` (the first IMAGE or REGION view, else the first view). Evaluation is deterministic either way.

    Returns:
        `str` or `PIL.Image.Image`.
    """
    if entity_view not in ENTITY_VIEWS:
        raise ValueError(f"entity_view must be one of {ENTITY_VIEWS}, got {entity_view!r}.")
    views = graph.entity_views(entity)
    if not views:
        raise ValueError(f"Entity {entity} ({graph.entity_key(entity)!r}) of graph {graph.name!r} has no view.")
    wanted = {"text": (ViewKind.TEXT,), "image": (ViewKind.IMAGE, ViewKind.REGION)}.get(entity_view, ())
    view = next((view for view in views if view.kind in wanted), views[0])
    return view.text if view.kind == ViewKind.TEXT else ViewImage(graph.root, view).load()


def _known_answers(heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> tuple[dict, dict]:
    """`(h, r) -> set of tails` and `(r, t) -> set of heads` of the given triplets."""
    tails_of, heads_of = defaultdict(set), defaultdict(set)
    for head, relation, tail in zip(heads.tolist(), relations.tolist(), tails.tolist()):
        tails_of[head, relation].add(tail)
        heads_of[relation, tail].add(head)
    return tails_of, heads_of


def _excluded_pairs(answers: Sequence[set], position_of: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(query, candidate position)` pairs to leave out of the counts, sorted by query."""
    queries, positions = [], []
    for query, entities in enumerate(answers):
        for entity in entities:
            if entity in position_of:
                queries.append(query)
                positions.append(position_of[entity])
    return torch.tensor(queries, dtype=torch.long), torch.tensor(positions, dtype=torch.long)


def _excluded_block(
    excluded: tuple[torch.Tensor, torch.Tensor], queries: range, candidates: range, device: torch.device
) -> torch.Tensor:
    """The boolean `(len(queries), len(candidates))` mask of the excluded pairs inside one block."""
    query_ids, positions = excluded
    lo, hi = torch.searchsorted(query_ids, torch.tensor([queries.start, queries.stop])).tolist()
    query_ids, positions = query_ids[lo:hi], positions[lo:hi]
    inside = (positions >= candidates.start) & (positions < candidates.stop)
    mask = torch.zeros(len(queries), len(candidates), dtype=torch.bool, device=device)
    mask[(query_ids[inside] - queries.start).to(device), (positions[inside] - candidates.start).to(device)] = True
    return mask


@torch.no_grad()
def link_prediction(
    model,
    processor,
    graph: KnowledgeGraph,
    triplet_indices: Sequence[int] | np.ndarray,
    known_triplet_indices: Sequence[int] | np.ndarray | None = None,
    candidate_entities: Sequence[int] | np.ndarray | None = None,
    directions: Sequence[str] = ("tail", "head"),
    hits_at: Sequence[int] = (1, 3, 10),
    entity_view: str = "first",
    batch_size: int = 64,
    chunk_size: int = 4096,
) -> dict:
    """
    Filtered link prediction on held-out triplets with the fusion encoder (see the module docstring for the scoring).

    Args:
        model ([`KnowledgeCLIPModel`] or `CLIPModel`): The model; a plain CLIP gets `{"available": False, ...}`.
        processor: The model's processor.
        graph ([`KnowledgeGraph`]): The graph holding the held-out triplets.
        triplet_indices (`Sequence[int]`): Indices of the held-out triplets in `graph` (e.g. `graph.split()["test"]`).
        known_triplet_indices (`Sequence[int]`, *optional*): The true triplets filtered out of the candidates; all
            triplets of `graph` when None. The held-out triplets are always among them.
        candidate_entities (`Sequence[int]`, *optional*): Entity ids ranked as candidate heads and tails; every
            entity of `graph` when None. Must contain the ends of the held-out triplets.
        directions (`Sequence[str]`, *optional*, defaults to `("tail", "head")`): `"tail"` for `(h, r, ?)`,
            `"head"` for `(?, r, t)` (one fusion pass per candidate and held-out relation).
        hits_at (`Sequence[int]`, *optional*, defaults to `(1, 3, 10)`): The k of Hits@k.
        entity_view (`str`, *optional*, defaults to `"first"`): Which view shows an entity (see [`graph_entity`]).
        batch_size (`int`, *optional*, defaults to 64): Entities per tower pass.
        chunk_size (`int`, *optional*, defaults to 4096): Block size of the rank counting.

    Returns:
        `dict`: `available`, `scoring`, `filtered`, `num_candidates`, and per direction (`"tail"`, `"head"`) and for
        both together (`"both"`) the `ranking_mrr_hits` metric: `mrr`, `mean_rank`, `hits@k`, `num_queries`.
    """
    if not is_knowledge_model(model):
        return unavailable(NO_FUSION_ENCODER.format(model=type(model).__name__))
    directions = tuple(directions)
    if not directions or set(directions) - {"tail", "head"}:
        raise ValueError(f"directions must be a non-empty subset of ('tail', 'head'), got {directions}.")
    test = np.asarray(triplet_indices, dtype=np.int64)
    if test.size == 0:
        raise ValueError("link_prediction needs at least one held-out triplet.")
    # Grouped by relation, so that the head-prediction queries of one relation form one contiguous block.
    test = test[np.argsort(graph.relation_ids[test], kind="stable")]
    heads, relations, tails = graph.heads[test], graph.relation_ids[test], graph.tails[test]
    known = np.arange(graph.num_triplets) if known_triplet_indices is None else np.asarray(known_triplet_indices)
    tails_of, heads_of = _known_answers(graph.heads[known], graph.relation_ids[known], graph.tails[known])
    for head, relation, tail in zip(heads.tolist(), relations.tolist(), tails.tolist()):
        tails_of[head, relation].add(tail)
        heads_of[relation, tail].add(head)

    candidates = np.arange(graph.num_entities) if candidate_entities is None else np.unique(candidate_entities)
    position_of = {int(entity): position for position, entity in enumerate(candidates)}
    missing = sorted((set(heads.tolist()) | set(tails.tolist())) - set(position_of))
    if missing:
        raise ValueError(f"The held-out triplets use entities that are not candidates, e.g. {missing[:5]}.")

    model.eval()
    test_relations = np.unique(relations)
    relation_row = {int(relation): row for row, relation in enumerate(test_relations)}
    relation_texts = [graph.relations[relation] for relation in test_relations]
    queries, query_of_triplet = np.unique(np.stack([heads, relations], axis=1), axis=0, return_inverse=True)
    query_of_triplet = query_of_triplet.reshape(-1)

    # Pass 1: Y(-,-,e) of every candidate and Y(h,r,-) of every held-out (h, r) query, one tower pass per chunk.
    entity_embeds, query_embeds = None, None
    for start in range(0, len(candidates), batch_size):
        chunk = candidates[start : start + batch_size]
        in_chunk = np.flatnonzero(np.isin(queries[:, 0], chunk))
        features, slots = encode_entity_batch(
            model, processor, [graph_entity(graph, e, entity_view) for e in chunk], relation_texts
        )
        chunk_embeds = entity_embeddings(model, features, slots).cpu()
        if entity_embeds is None:
            entity_embeds = torch.empty(len(candidates), chunk_embeds.shape[1])
            query_embeds = torch.empty(len(queries), chunk_embeds.shape[1])
        entity_embeds[start : start + len(chunk)] = chunk_embeds
        if in_chunk.size:
            local = torch.as_tensor(np.searchsorted(chunk, queries[in_chunk, 0]), device=slots.device)
            rows = torch.as_tensor([relation_row[r] for r in queries[in_chunk, 1].tolist()], device=slots.device)
            query_embeds[in_chunk] = query_embeddings(model, features, slots[local], rows).cpu()

    tail_positions = torch.as_tensor([position_of[t] for t in tails.tolist()])
    triplet_queries = query_embeds[torch.as_tensor(query_of_triplet)]
    tail_embeds = entity_embeds[tail_positions]
    true_scores = (triplet_queries * tail_embeds).sum(dim=-1)

    ranks = {}
    if "tail" in directions:
        excluded = _excluded_pairs([tails_of[h, r] for h, r in zip(heads.tolist(), relations.tolist())], position_of)
        tail_ranks = torch.ones(len(test), dtype=torch.long)
        for query_start in range(0, len(test), chunk_size):
            query_range = range(query_start, min(query_start + chunk_size, len(test)))
            block_queries = triplet_queries[query_range.start : query_range.stop]
            for candidate_start in range(0, len(candidates), chunk_size):
                candidate_range = range(candidate_start, min(candidate_start + chunk_size, len(candidates)))
                scores = block_queries @ entity_embeds[candidate_range.start : candidate_range.stop].T
                mask = _excluded_block(excluded, query_range, candidate_range, scores.device)
                tail_ranks[query_range.start : query_range.stop] += count_at_least(
                    scores, true_scores[query_range.start : query_range.stop], mask
                )
        ranks["tail"] = tail_ranks

    if "head" in directions:
        # Pass 2: Y(h', r, -) of every candidate h' and held-out relation r, reduced to rank counts chunk by chunk.
        excluded = _excluded_pairs([heads_of[r, t] for r, t in zip(relations.tolist(), tails.tolist())], position_of)
        head_ranks = torch.ones(len(test), dtype=torch.long)
        row_bounds = np.searchsorted(relations, test_relations, side="left").tolist() + [len(test)]
        for start in range(0, len(candidates), batch_size):
            chunk = candidates[start : start + batch_size]
            candidate_range = range(start, start + len(chunk))
            features, slots = encode_entity_batch(
                model, processor, [graph_entity(graph, e, entity_view) for e in chunk], relation_texts
            )
            for row in range(len(test_relations)):
                candidate_queries = query_embeddings(model, features, slots, torch.full_like(slots, row)).cpu()
                for block_start in range(row_bounds[row], row_bounds[row + 1], chunk_size):
                    block = range(block_start, min(block_start + chunk_size, row_bounds[row + 1]))
                    scores = tail_embeds[block.start : block.stop] @ candidate_queries.T
                    mask = _excluded_block(excluded, block, candidate_range, scores.device)
                    head_ranks[block.start : block.stop] += count_at_least(
                        scores, true_scores[block.start : block.stop], mask
                    )
        ranks["head"] = head_ranks

    hits_metric = load_metric("ranking_mrr_hits")
    result = {
        "available": True,
        "scoring": "cos(Y(h, r, -), Y(-, -, t))",
        "filtered": True,
        "num_candidates": len(candidates),
        "num_triplets": len(test),
    }
    for direction, direction_ranks in ranks.items():
        result[direction] = hits_metric.compute(
            predictions=direction_ranks.tolist(), references=[len(candidates)] * len(test), hits_at=list(hits_at)
        )
    if len(ranks) == 2:
        both = torch.cat(list(ranks.values())).tolist()
        result["both"] = hits_metric.compute(
            predictions=both, references=[len(candidates)] * len(both), hits_at=list(hits_at)
        )
    return result


@torch.no_grad()
def relation_prediction(
    model,
    processor,
    graph: KnowledgeGraph,
    triplet_indices: Sequence[int] | np.ndarray,
    top_k: Sequence[int] = (1, 3),
    entity_view: str = "first",
    batch_size: int = 64,
) -> dict:
    """
    Relation prediction accuracy of the E2R head on held-out triplets: the relation of `(h, ?, t)` is classified from
    `R(h, -, t)` over `model.config.relation_vocab`.

    Held-out triplets whose relation text is not in the model's vocabulary cannot be scored; they are counted in
    `skipped` rather than dropped silently.

    Args:
        model ([`KnowledgeCLIPModel`] or `CLIPModel`): The model; a plain CLIP gets `{"available": False, ...}`.
        processor: The model's processor.
        graph ([`KnowledgeGraph`]): The graph holding the held-out triplets.
        triplet_indices (`Sequence[int]`): Indices of the held-out triplets in `graph`.
        top_k (`Sequence[int]`, *optional*, defaults to `(1, 3)`): The k of the top-k accuracies.
        entity_view (`str`, *optional*, defaults to `"first"`): Which view shows an entity (see [`graph_entity`]).
        batch_size (`int`, *optional*, defaults to 64): Triplets per pass.

    Returns:
        `dict`: `available`, `accuracy` (top-1), `top{k}_accuracy` for the other k, `num_examples`, `num_classes`
        and `skipped`.
    """
    if not is_knowledge_model(model):
        return unavailable(NO_FUSION_ENCODER.format(model=type(model).__name__))
    vocab = {text: index for index, text in enumerate(model.config.relation_vocab)}
    if not vocab:
        return unavailable("The model's relation_vocab is empty: it has no relation classifier.")
    test = np.asarray(triplet_indices, dtype=np.int64)
    labels = np.array([vocab.get(graph.relations[r], -1) for r in graph.relation_ids[test].tolist()])
    scored = test[labels >= 0]
    skipped = int((labels < 0).sum())
    if scored.size == 0:
        return unavailable(
            f"None of the {len(test)} held-out relations is in the model's relation_vocab "
            f"(graph relations {graph.relations[:5]}..., model {list(vocab)[:5]}...)."
        )
    model.eval()
    ranks = []
    for start in range(0, len(scored), batch_size):
        chunk = scored[start : start + batch_size]
        entity_ids, slot_of = np.unique(np.concatenate([graph.heads[chunk], graph.tails[chunk]]), return_inverse=True)
        features, slots = encode_entity_batch(
            model, processor, [graph_entity(graph, e, entity_view) for e in entity_ids]
        )
        slot_of = torch.as_tensor(slot_of, device=slots.device)
        logits = relation_logits(model, features, slots[slot_of[: len(chunk)]], slots[slot_of[len(chunk) :]]).cpu()
        chunk_labels = torch.as_tensor(labels[labels >= 0][start : start + len(chunk)])
        true_logits = logits[torch.arange(len(chunk)), chunk_labels]
        own = torch.nn.functional.one_hot(chunk_labels, logits.shape[1]).bool()
        ranks.append(1 + count_at_least(logits, true_logits, own))
    ranks = torch.cat(ranks).tolist()
    result = load_metric("topk_accuracy").compute(
        predictions=ranks, references=[len(vocab)] * len(ranks), top_k=sorted({1, *top_k})
    )
    return {
        "available": True,
        "accuracy": result.pop("top1_accuracy"),
        **result,
        "num_classes": len(vocab),
        "skipped": {"relation not in the model's relation_vocab": skipped} if skipped else {},
    }
