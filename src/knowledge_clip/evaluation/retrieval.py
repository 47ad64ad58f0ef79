# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Image<->text retrieval Recall@k, with ranks counted block by block so that a 100k x 100k gallery never
materialises its similarity matrix.
"""

from collections.abc import Sequence

import torch

from ..graph import KnowledgeGraph, ViewKind
from .encoding import ImageLike, ViewImage, encode_images, encode_texts
from .metrics import count_at_least, load_metric

IMAGE_OF = "image of"
CAPTION_OF = "caption of"


@torch.no_grad()
def retrieval_ranks(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_to_image: torch.Tensor, chunk_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The 1-based rank of the best-ranked relevant item of every query, in both directions.

    Text -> image: the rank of a text's image among all images. Image -> text: the rank of the image's best-scored
    caption among all texts, the other captions of the same image left out. Ties count against the model. Scores are
    computed in `chunk_size x chunk_size` blocks, so memory stays `O(chunk_size^2)` whatever the gallery size.

    Args:
        image_embeds (`torch.Tensor` of shape `(num_images, dim)`): Normalised image embeddings.
        text_embeds (`torch.Tensor` of shape `(num_texts, dim)`): Normalised text embeddings.
        text_to_image (`torch.Tensor` of shape `(num_texts,)`): The image index of each text; every image needs at
            least one text.
        chunk_size (`int`, *optional*, defaults to 4096): Rows and columns per block.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: image -> text ranks `(num_images,)` and text -> image ranks
        `(num_texts,)`.
    """
    num_images, num_texts = image_embeds.shape[0], text_embeds.shape[0]
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long, device=text_embeds.device)
    if text_to_image.shape != (num_texts,):
        raise ValueError(f"text_to_image must have shape ({num_texts},), got {tuple(text_to_image.shape)}.")
    if num_texts and (text_to_image.min() < 0 or text_to_image.max() >= num_images):
        raise ValueError(f"text_to_image must hold image indices in [0, {num_images}).")
    captions_per_image = torch.bincount(text_to_image, minlength=num_images)
    if num_images and captions_per_image.min() == 0:
        raise ValueError(f"Image {int(torch.argmin(captions_per_image))} has no text: its rank is undefined.")

    pair_scores = (text_embeds * image_embeds[text_to_image]).sum(dim=-1)
    best_caption_scores = torch.full((num_images,), -torch.inf, dtype=pair_scores.dtype, device=pair_scores.device)
    best_caption_scores = best_caption_scores.scatter_reduce(0, text_to_image, pair_scores, reduce="amax")

    text_ranks = torch.ones(num_texts, dtype=torch.long)
    image_ranks = torch.ones(num_images, dtype=torch.long)
    for text_start in range(0, num_texts, chunk_size):
        texts = slice(text_start, text_start + chunk_size)
        for image_start in range(0, num_images, chunk_size):
            images = slice(image_start, image_start + chunk_size)
            scores = text_embeds[texts] @ image_embeds[images].T
            image_ids = torch.arange(image_start, image_start + scores.shape[1], device=scores.device)
            own_image = text_to_image[texts].unsqueeze(1) == image_ids.unsqueeze(0)
            text_ranks[texts] += count_at_least(scores, pair_scores[texts], own_image).cpu()
            image_ranks[images] += count_at_least(scores.T, best_caption_scores[images], own_image.T).cpu()
    return image_ranks, text_ranks


@torch.no_grad()
def reranked_retrieval_ranks(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_to_image: torch.Tensor,
    rerank_image_embeds: torch.Tensor,
    rerank_text_embeds: torch.Tensor,
    top_k: int,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    [`retrieval_ranks`] after re-ranking: each query's `top_k` candidates by `image_embeds · text_embeds` are
    re-ordered by the sum of that score and a second similarity `rerank_image_embeds · rerank_text_embeds` (the
    fusion encoder's E2E score `cos(Y(image, "image of", -), Y(-, -, caption))` in `examples/finetune.py`); the
    candidates below the `top_k` keep their places. A query whose relevant item is not in its `top_k` keeps its rank.

    Args:
        image_embeds, text_embeds, text_to_image: as in [`retrieval_ranks`] (the first-stage similarity).
        rerank_image_embeds (`torch.Tensor` of shape `(num_images, dim2)`): Normalised second-stage image embeddings.
        rerank_text_embeds (`torch.Tensor` of shape `(num_texts, dim2)`): Normalised second-stage text embeddings.
        top_k (`int`): Candidates re-ranked per query (at least 1).
        chunk_size (`int`, *optional*, defaults to 1024): Queries per block; memory is `O(chunk_size x gallery)`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: image -> text ranks `(num_images,)` and text -> image ranks
        `(num_texts,)`, ties counted against the model.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    image_ranks, text_ranks = retrieval_ranks(image_embeds, text_embeds, text_to_image)
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long, device=text_embeds.device)
    directions = (
        # queries, gallery, their second-stage embeddings, whether gallery item g is relevant to query q, ranks
        (text_embeds, image_embeds, rerank_text_embeds, rerank_image_embeds, lambda q, g: g == text_to_image[q, None],
         text_ranks),
        (image_embeds, text_embeds, rerank_image_embeds, rerank_text_embeds, lambda q, g: text_to_image[g] == q[:, None],
         image_ranks),
    )  # fmt: skip
    for queries, gallery, rerank_queries, rerank_gallery, is_relevant, ranks in directions:
        k = min(top_k, gallery.shape[0])
        for start in range(0, queries.shape[0], chunk_size):
            rows = torch.arange(start, min(start + chunk_size, queries.shape[0]), device=queries.device)
            first, candidates = (queries[rows] @ gallery.T).topk(k, dim=1)
            second = (rerank_queries[rows].unsqueeze(1) * rerank_gallery[candidates]).sum(dim=-1)
            scores = first + second
            relevant = is_relevant(rows, candidates)
            best = scores.masked_fill(~relevant, -torch.inf).amax(dim=1)
            reranked = 1 + ((scores >= best[:, None]) & ~relevant).sum(dim=1)
            found = relevant.any(dim=1)
            ranks[rows[found].cpu()] = reranked[found].cpu()
    return image_ranks, text_ranks


@torch.no_grad()
def image_text_retrieval(
    model,
    processor,
    images: Sequence[ImageLike],
    texts: Sequence[str],
    text_to_image: Sequence[int],
    recall_at: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    chunk_size: int = 4096,
) -> dict:
    """
    Image -> text and text -> image Recall@k with the CLIP towers (a plain `CLIPModel` or a [`KnowledgeCLIPModel`]).

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with a `tokenizer` and an `image_processor`.
        images (`Sequence[PIL.Image.Image | str | os.PathLike]`): The image gallery.
        texts (`Sequence[str]`): The captions.
        text_to_image (`Sequence[int]`): The image index of each caption.
        recall_at (`Sequence[int]`, *optional*, defaults to `(1, 5, 10)`): The k of Recall@k.
        batch_size (`int`, *optional*, defaults to 64): Images or texts per forward pass.
        chunk_size (`int`, *optional*, defaults to 4096): Block size of the rank counting.

    Returns:
        `dict`: `{"image_to_text": {"recall@k": ...}, "text_to_image": {...}, "num_images", "num_texts"}`.
    """
    if len(texts) != len(text_to_image):
        raise ValueError(f"Got {len(texts)} texts but {len(text_to_image)} text_to_image entries.")
    image_embeds = encode_images(model, processor, images, batch_size)
    text_embeds = encode_texts(model, processor, texts, batch_size)
    image_ranks, text_ranks = retrieval_ranks(image_embeds, text_embeds, torch.tensor(list(text_to_image)), chunk_size)
    recall = load_metric("retrieval_recall")
    result = {}
    for direction, ranks, gallery in (
        ("image_to_text", image_ranks, len(texts)),
        ("text_to_image", text_ranks, len(images)),
    ):
        scores = recall.compute(
            predictions=ranks.tolist(), references=[gallery] * len(ranks), recall_at=list(recall_at)
        )
        result[direction] = scores
    return result | {"num_images": len(images), "num_texts": len(texts)}


def retrieval_pairs_from_graph(graph: KnowledgeGraph) -> tuple[list[ImageLike], list[str], list[int]]:
    """
    The image gallery, captions and caption -> image index of an image-text graph (from `load_image_text_pairs`:
    triplets `(image, "image of", caption)` and `(caption, "caption of", image)`).

    Args:
        graph ([`KnowledgeGraph`]): The graph; its image entities need an IMAGE view, its captions a TEXT view.

    Returns:
        `tuple[list[ViewImage], list[str], list[int]]`: the images (opened when encoded), caption texts, and the
        image index of each caption. A caption written for several images appears once per image.
    """
    relation_ids = {text: index for index, text in enumerate(graph.relations)}
    pairs = set()
    for relation, image_is_head in ((IMAGE_OF, True), (CAPTION_OF, False)):
        if relation not in relation_ids:
            continue
        chosen = graph.relation_ids == relation_ids[relation]
        heads, tails = graph.heads[chosen], graph.tails[chosen]
        pairs.update(zip(heads.tolist(), tails.tolist()) if image_is_head else zip(tails.tolist(), heads.tolist()))
    if not pairs:
        raise ValueError(f"Graph {graph.name!r} has no {IMAGE_OF!r} / {CAPTION_OF!r} triplets to retrieve with.")
    image_position: dict[int, int] = {}
    images, texts, text_to_image = [], [], []
    for image_entity, text_entity in sorted(pairs):
        image_view, text_view = _view(graph, image_entity, ViewKind.IMAGE), _view(graph, text_entity, ViewKind.TEXT)
        if image_entity not in image_position:
            image_position[image_entity] = len(images)
            images.append(ViewImage(graph.root, image_view))
        texts.append(text_view.text)
        text_to_image.append(image_position[image_entity])
    return images, texts, text_to_image


def _view(graph: KnowledgeGraph, entity: int, kind: ViewKind):
    for view in graph.entity_views(entity):
        if view.kind == kind:
            return view
    raise ValueError(f"Entity {graph.entity_key(entity)!r} of graph {graph.name!r} has no {kind.name} view.")
