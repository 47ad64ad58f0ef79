# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
One training step of the trainer's loss path (`knowledge_clip.training.step.knowledge_forward` under DDP), on a fixed
global batch of the tiny demo world; writes the losses and every parameter's gradient to a file. Run by
`tests/test_training_distributed.py`:

    python tests/distributed_step.py WORLD TOKENIZER OUT.pt           # one process, the whole global batch
    accelerate launch --multi_gpu --num_processes 2 tests/distributed_step.py WORLD TOKENIZER OUT.pt [--no_loss_gather]

The tokenizer is read from a directory, so that every process tokenizes with the very same files.

Process r of N collates the r-th of N equal slices of the global batch's triplet references; the single process
collates the same slices and concatenates them, so both see exactly the same entities, views and G2E edges.
"""

import argparse
import faulthandler
import os
import sys

import torch
import torch.nn.functional as F
from accelerate import Accelerator, DistributedDataParallelKwargs
from transformers import BatchFeature, CLIPModel, CLIPTokenizer

from knowledge_clip import KnowledgeCLIPModel, KnowledgeCLIPProcessor
from knowledge_clip.data.collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from knowledge_clip.training.datasets import DatasetSpec, load_mixture
from knowledge_clip.training.step import LOSS_NAMES, knowledge_forward

sys.path.insert(0, os.path.dirname(__file__))
from tiny import tiny_config, tiny_processor  # noqa: E402

GLOBAL_BATCH = 12
NUM_SLICES = 2


def concat_knowledge_batches(batches: list[BatchFeature], pad_token_id: int) -> dict:
    """
    The knowledge batch holding every triplet, entity and edge of `batches`, without merging equal entities across
    them: what N processes see together (slots: every batch's texts, then every batch's images).
    """
    num_texts = [b["entity_input_ids"].shape[0] if "entity_input_ids" in b else 0 for b in batches]
    num_images = [b["entity_pixel_values"].shape[0] if "entity_pixel_values" in b else 0 for b in batches]
    num_relations = [b["relation_input_ids"].shape[0] for b in batches]
    total_texts = sum(num_texts)

    def pad_cat(key: str, value: int) -> torch.Tensor:
        tensors = [b[key] for b in batches if key in b]
        width = max(t.shape[1] for t in tensors)
        return torch.cat([F.pad(t, (0, width - t.shape[1]), value=value) for t in tensors])

    triplets, edges, entity_ids = [], [], [[], []]
    for index, batch in enumerate(batches):
        text_offset = sum(num_texts[:index])
        image_offset = total_texts + sum(num_images[:index]) - num_texts[index]
        relation_offset = sum(num_relations[:index])

        offsets = (num_texts[index], text_offset, image_offset, relation_offset)
        triplets.append(_shift_rows(batch["triplets"], *offsets))
        if "graph_edges" in batch:
            edges.append(_shift_rows(batch["graph_edges"], *offsets))
        entity_ids[0].append(batch["entity_ids"][: num_texts[index]])
        entity_ids[1].append(batch["entity_ids"][num_texts[index] :])
    merged = {
        "triplets": torch.cat(triplets),
        "graph_edges": torch.cat(edges) if edges else torch.zeros(0, 3, dtype=torch.long),
        "entity_ids": torch.cat(entity_ids[0] + entity_ids[1]),
        "relation_input_ids": pad_cat("relation_input_ids", pad_token_id),
        "relation_attention_mask": pad_cat("relation_attention_mask", 0),
        "relation_labels": torch.cat([b["relation_labels"] for b in batches]),
    }
    if total_texts:
        merged["entity_input_ids"] = pad_cat("entity_input_ids", pad_token_id)
        merged["entity_attention_mask"] = pad_cat("entity_attention_mask", 0)
    if sum(num_images):
        merged["entity_pixel_values"] = torch.cat(
            [b["entity_pixel_values"] for b in batches if "entity_pixel_values" in b]
        )
    return merged


def _shift_rows(
    rows: torch.Tensor, num_texts: int, text_offset: int, image_offset: int, relation_offset: int
) -> torch.Tensor:
    """`(head slot, relation row, tail slot)` rows of one batch, renumbered into the concatenated batch."""
    rows = rows.clone()
    for column in (0, 2):
        rows[:, column] += torch.where(rows[:, column] < num_texts, text_offset, image_offset)
    rows[:, 1] += relation_offset
    return rows


def main() -> None:
    # A process whose peer died would wait in a collective forever: print every stack and exit instead.
    faulthandler.dump_traceback_later(120, exit=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("world")
    parser.add_argument("tokenizer")
    parser.add_argument("out")
    parser.add_argument("--no_loss_gather", action="store_true")
    args = parser.parse_args()

    accelerator = Accelerator(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    mixture = load_mixture([DatasetSpec("demo", args.world)], 0.0, seed=0, demo_size="tiny")
    tokenizer = CLIPTokenizer.from_pretrained(args.tokenizer)
    processor = KnowledgeCLIPProcessor(
        tiny_processor(tokenizer).image_processor, tokenizer, relation_vocab=mixture.relation_vocab
    )
    # Drop-path off: both runs must be deterministic. Same seed in every process: same initial weights.
    config = tiny_config(tokenizer, relation_vocab=mixture.relation_vocab)
    config.fusion_encoder_config.drop_path_rate = 0.0
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(config)
    teacher = CLIPModel(config.to_clip_config()).eval().requires_grad_(False)

    references = KnowledgeTripletDataset(mixture.train_graphs, seed=0).__getitems__(list(range(GLOBAL_BATCH)))
    slice_size = GLOBAL_BATCH // NUM_SLICES
    collator = KnowledgeCLIPCollator(mixture.train_graphs, processor, num_neighbors=2, num_hops=2, seed=0)
    slices = [collator(references[i * slice_size : (i + 1) * slice_size]) for i in range(NUM_SLICES)]
    if accelerator.num_processes == 1:
        batch = concat_knowledge_batches(slices, tokenizer.pad_token_id)
    else:
        assert accelerator.num_processes == NUM_SLICES, "run with 1 or 2 processes"
        batch = dict(slices[accelerator.process_index])

    model = accelerator.prepare(model)
    model.train()
    output = knowledge_forward(model, batch, teacher, accelerator, gather_losses=not args.no_loss_gather)
    accelerator.backward(output.loss)
    losses = {
        name: accelerator.reduce(output[name].detach(), reduction="mean").item()
        for name in LOSS_NAMES
        if output.get(name) is not None
    }
    gradients = {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in accelerator.unwrap_model(model).named_parameters()
    }
    if accelerator.is_main_process:
        torch.save({"losses": losses, "gradients": gradients}, args.out)
    # The teardown of examples/pretrain.py (docs/training.md, "Ending a run").
    accelerator.wait_for_everyone()
    model = accelerator.free_memory(model)
    accelerator.end_training()


if __name__ == "__main__":
    main()
