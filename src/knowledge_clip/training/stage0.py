# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Stage 0 of the offline demo: "the original CLIP". No CLIP checkpoint can be downloaded here, so a small CLIP and its
BPE tokenizer are trained from scratch on the image-caption pairs of the training graphs; Knowledge-CLIP then
continues this model, with it as the frozen distillation teacher, as the paper continues OpenAI's CLIP.

The result is an ordinary CLIP checkpoint directory (`CLIPModel` + `CLIPProcessor`), cached: a directory whose
`stage0.json` records the same arguments and data is reused as is.
"""

import collections
import hashlib
import heapq
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch
from tokenizers import pre_tokenizers
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

from ..data.image_text import IMAGE_OF
from ..data.images import open_view_image
from ..graph import KnowledgeGraph, ViewKind
from .arguments import Stage0Arguments
from .errors import TrainingConfigurationError

__all__ = ["image_caption_pairs", "train_clip_tokenizer", "train_stage0_clip", "world_texts"]

logger = logging.getLogger(__name__)

MARKER_NAME = "stage0.json"


def image_caption_pairs(graphs: Sequence[KnowledgeGraph]) -> list[tuple[KnowledgeGraph, int, str]]:
    """
    The `(graph, image entity, caption)` pairs of every `"image of"` triplet whose tail has a text view.

    Args:
        graphs (`list[KnowledgeGraph]`): The training graphs.
    """
    pairs = []
    for graph in graphs:
        if IMAGE_OF not in graph.relations:
            continue
        relation = graph.relations.index(IMAGE_OF)
        for head, tail in zip(
            graph.heads[graph.relation_ids == relation], graph.tails[graph.relation_ids == relation]
        ):
            texts = [view.text for view in graph.entity_views(int(tail)) if view.kind == ViewKind.TEXT]
            if texts:
                pairs.append((graph, int(head), texts[0]))
    return pairs


def world_texts(graphs: Sequence[KnowledgeGraph]) -> list[str]:
    """Every text the model will read: text views of all entities (captions, labels, glosses) and relation texts."""
    texts = []
    for graph in graphs:
        texts.extend(graph.relations)
        for entity in range(graph.num_entities):
            texts.extend(view.text for view in graph.entity_views(entity) if view.kind == ViewKind.TEXT)
    return texts


def train_stage0_clip(graphs: Sequence[KnowledgeGraph], args: Stage0Arguments, output_dir: str, seed: int) -> str:
    """
    Trains (or reuses) the stage-0 CLIP and saves it with its processor to `output_dir`.

    The tokenizer is a `CLIPTokenizer` trained on `world_texts(graphs)` (`train_clip_tokenizer`); the text tower's `bos/eos/pad_token_id`
    are the tokenizer's, so CLIP's EOS pooling finds the end of each text (its legacy rule for `eos_token_id == 2`
    never applies: the trained tokenizer puts its special tokens first). Images are resized and centre-cropped to
    `args.stage0_image_size` once, up front; the loop then only samples batches, with CLIP's loss, AdamW and a cosine
    schedule with 10% warm-up.

    Args:
        graphs (`list[KnowledgeGraph]`): The training graphs; their `"image of"` pairs are the training data.
        args (`Stage0Arguments`): Sizes and optimisation.
        output_dir (`str`): The cache directory.
        seed (`int`): Seed of initialisation and batch sampling.

    Returns:
        `str`: `output_dir`.

    Raises:
        TrainingConfigurationError: when the graphs hold no image-caption pairs.
    """
    pairs = image_caption_pairs(graphs)
    if not pairs:
        raise TrainingConfigurationError(
            "No CLIP checkpoint given (--model_name_or_path) and no image-caption pairs to train one on: add an "
            "image_text or demo --dataset."
        )
    texts = world_texts(graphs)
    fingerprint = {
        "arguments": asdict(args) | {"stage0_dir": None},
        "seed": seed,
        "data": hashlib.sha256("\n".join([*texts, *(f"{g.root}/{i}" for g, i, _ in pairs)]).encode()).hexdigest(),
    }
    marker = os.path.join(output_dir, MARKER_NAME)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as file:
            if json.load(file).get("fingerprint") == fingerprint:
                logger.info("Reusing the stage-0 CLIP in %s", output_dir)
                return output_dir

    start = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = train_clip_tokenizer(texts, vocab_size=args.stage0_vocab_size)
    tokenizer.model_max_length = args.stage0_max_text_length
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": args.stage0_image_size},
        crop_size={"height": args.stage0_image_size, "width": args.stage0_image_size},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model = CLIPModel(_stage0_config(args, tokenizer))

    # Everything is encoded once: the loop below is pure tensor work.
    image_keys = sorted({(id(graph), entity) for graph, entity, _ in pairs})
    image_row = {key: row for row, key in enumerate(image_keys)}
    graph_of = {id(graph): graph for graph, _, _ in pairs}
    images = [_first_image(graph_of[key[0]], key[1]) for key in image_keys]
    pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]
    tokens = tokenizer([caption for _, _, caption in pairs], padding=True, truncation=True, return_tensors="pt")
    pair_images = torch.tensor([image_row[(id(graph), entity)] for graph, entity, _ in pairs])

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.stage0_learning_rate, weight_decay=0.1)
    warmup = max(1, args.stage0_steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / args.stage0_steps))),
    )
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(args.stage0_batch_size, len(pairs))
    model.train()
    losses = []
    for step in range(args.stage0_steps):
        rows = _distinct_image_rows(pair_images, batch_size, generator)
        output = model(
            input_ids=tokens["input_ids"][rows],
            attention_mask=tokens["attention_mask"][rows],
            pixel_values=pixel_values[pair_images[rows]],
            return_loss=True,
        )
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(output.loss.item())
        if step % 50 == 0 or step == args.stage0_steps - 1:
            logger.info("stage 0 step %d/%d: clip loss %.4f", step + 1, args.stage0_steps, losses[-1])

    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".stage0-tmp-", dir=parent)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    with open(os.path.join(staging, MARKER_NAME), "w", encoding="utf-8") as file:
        json.dump(
            {
                "fingerprint": fingerprint,
                "num_pairs": len(pairs),
                "num_images": len(image_keys),
                "losses": losses,
                "seconds": time.perf_counter() - start,
            },
            file,
            indent=1,
        )
    shutil.rmtree(output_dir, ignore_errors=True)
    os.replace(staging, output_dir)
    logger.info(
        "Stage-0 CLIP trained on %d pairs in %.0fs (loss %.3f -> %.3f), saved to %s",
        len(pairs),
        time.perf_counter() - start,
        losses[0],
        losses[-1],
        output_dir,
    )
    return output_dir


def train_clip_tokenizer(texts: Sequence[str], vocab_size: int) -> CLIPTokenizer:
    """
    A `CLIPTokenizer` with a BPE vocabulary learned from `texts`, the same for the same texts in every run.

    `CLIPTokenizer().train_new_from_iterator` is not reproducible: tokenizers' BPE trainer numbers the end-of-word
    symbols (`"a</w>"`) in hash-map order and breaks ties between equally frequent pairs by those numbers, so two runs
    can learn different merges and give every token another id (huggingface/tokenizers#1794). This is the same
    training — CLIP's normalizer and pre-tokenizer split the texts into words, the vocabulary starts with the special
    tokens and the 256 byte-level symbols, and the most frequent pair is merged until `vocab_size` tokens or no pair
    is left — with ties broken by the pairs' text.

    Args:
        texts (`Sequence[str]`): The training texts.
        vocab_size (`int`): Largest vocabulary size, special tokens included.
    """
    backend = CLIPTokenizer().backend_tokenizer
    word_counts = collections.Counter(
        word
        for text in texts
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
    )
    words = [[*word[:-1], word[-1] + "</w>"] for word in word_counts]
    counts = list(word_counts.values())
    vocab = ["<|startoftext|>", "<|endoftext|>", *sorted(pre_tokenizers.ByteLevel.alphabet())]
    vocab += sorted({symbol for symbols in words for symbol in symbols} - set(vocab))
    known = set(vocab)
    pair_counts = collections.Counter()
    pair_words = collections.defaultdict(set)  # pair -> words it occurs in (or did: merges make entries stale)
    for index, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += counts[index]
            pair_words[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]  # most frequent first, then by text
    heapq.heapify(heap)
    merges = []
    while heap and len(vocab) < vocab_size:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts[pair] != -negative_count:  # stale: the pair's count changed since it was pushed
            continue
        merges.append(pair)
        merged = pair[0] + pair[1]
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        changed = set()
        for index in pair_words.pop(pair):
            symbols, merged_symbols, position = words[index], [], 0
            while position < len(symbols):
                if tuple(symbols[position : position + 2]) == pair:
                    merged_symbols.append(merged)
                    position += 2
                else:
                    merged_symbols.append(symbols[position])
                    position += 1
            for old_pair in zip(symbols, symbols[1:]):
                pair_counts[old_pair] -= counts[index]
                changed.add(old_pair)
            for new_pair in zip(merged_symbols, merged_symbols[1:]):
                pair_counts[new_pair] += counts[index]
                pair_words[new_pair].add(index)
                changed.add(new_pair)
            words[index] = merged_symbols
        for changed_pair in changed:
            if pair_counts[changed_pair] > 0:
                heapq.heappush(heap, (-pair_counts[changed_pair], changed_pair))
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(vocab)}, merges=merges)


def _stage0_config(args: Stage0Arguments, tokenizer: CLIPTokenizer) -> CLIPConfig:
    width = args.stage0_hidden_size
    heads = max(1, width // 32)
    return CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": args.stage0_num_layers,
            "num_attention_heads": heads,
            "max_position_embeddings": args.stage0_max_text_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": args.stage0_num_layers,
            "num_attention_heads": heads,
            "image_size": args.stage0_image_size,
            "patch_size": args.stage0_patch_size,
        },
        projection_dim=width // 2,
    )


def _first_image(graph: KnowledgeGraph, entity: int):
    view = next(v for v in graph.entity_views(entity) if v.kind in (ViewKind.IMAGE, ViewKind.REGION))
    return open_view_image(graph.root, view)


def _distinct_image_rows(pair_images: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random batch of pairs with at most one caption per image: CLIP's loss takes every other pair as a negative."""
    order = torch.randperm(pair_images.shape[0], generator=generator)
    _, first = np.unique(pair_images[order].numpy(), return_index=True)
    return order[np.sort(first)][:batch_size]
