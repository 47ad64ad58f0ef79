"""Tiny configurations, tokenizer and processor shared by the tests (< 1M parameters, offline)."""

import numpy as np
from PIL import Image
from transformers import CLIPImageProcessorPil, CLIPTokenizer

from knowledge_clip import KnowledgeCLIPConfig, KnowledgeCLIPProcessor
from knowledge_clip.training.stage0 import train_clip_tokenizer

RELATIONS = ["is a", "has part", "left of", "image of", "caption of"]
WORDS = (
    "a the red blue green yellow circle square triangle shape colour left right of is has part image caption "
    "photo small big dog cat animal tail above below"
).split()
IMAGE_SIZE = 32


def tiny_tokenizer() -> CLIPTokenizer:
    corpus = [" ".join(WORDS)] * 4 + RELATIONS
    tokenizer = train_clip_tokenizer(corpus, vocab_size=300)
    tokenizer.model_max_length = 32
    return tokenizer


def tiny_config(tokenizer: CLIPTokenizer | None = None, **overrides) -> KnowledgeCLIPConfig:
    tokenizer = tokenizer or tiny_tokenizer()
    values = {
        "text_config": {
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 32,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        "projection_dim": 16,
        "fusion_encoder_config": {
            "hidden_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 48,
            "drop_path_rate": 0.1,
        },
        "relation_vocab": list(RELATIONS),
    }
    values.update(overrides)
    return KnowledgeCLIPConfig(**values)


def tiny_processor(tokenizer: CLIPTokenizer | None = None) -> KnowledgeCLIPProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return KnowledgeCLIPProcessor(image_processor, tokenizer or tiny_tokenizer(), relation_vocab=list(RELATIONS))


def solid_image(color: tuple[int, int, int], size: int = 40, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(sum(color))
    pixels = np.clip(np.array(color)[None, None] + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB").convert(mode)
