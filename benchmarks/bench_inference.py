"""Section 1: inference parity. `KnowledgeCLIPModel.get_image_features` / `get_text_features` against a stock
`CLIPModel` holding the same weights (`model.to_clip()`), on the same inputs, timed in alternation."""

from __future__ import annotations

import functools

import torch
from common import interleaved_medians

from knowledge_clip import KnowledgeCLIPModel


@torch.no_grad()
def run(model: KnowledgeCLIPModel, batch: dict, reps: int, warmup: int) -> dict:
    """Ratios of Knowledge-CLIP's to CLIP's feature time (target <= 1.02) and the largest output difference."""
    model = model.eval()
    clip = model.to_clip().eval()
    text_inputs = {"input_ids": batch["entity_input_ids"], "attention_mask": batch["entity_attention_mask"]}
    image_inputs = {"pixel_values": batch["entity_pixel_values"]}
    results = {
        "text_rows": int(text_inputs["input_ids"].shape[0]),
        "image_rows": int(image_inputs["pixel_values"].shape[0]),
    }
    for kind, inputs in (("image", image_inputs), ("text", text_inputs)):
        method = f"get_{kind}_features"
        ours, theirs = getattr(model, method), getattr(clip, method)
        difference = (ours(**inputs).pooler_output - theirs(**inputs).pooler_output).abs().max().item()
        timings = interleaved_medians(
            {
                "knowledge_clip": functools.partial(ours, **inputs),
                "clip": functools.partial(theirs, **inputs),
            },
            reps,
            warmup,
        )
        results[kind] = {
            "knowledge_clip_s": timings["knowledge_clip"]["median_s"],
            "clip_s": timings["clip"]["median_s"],
            "ratio": timings["knowledge_clip"]["median_s"] / timings["clip"]["median_s"],
            "max_abs_diff": difference,
        }
    model.train()
    return results
