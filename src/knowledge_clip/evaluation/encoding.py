# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Batched CLIP-tower embeddings of texts and images, the same for a `CLIPModel` and a `KnowledgeCLIPModel`."""

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import open_image, open_view_image
from ..graph import EntityView
from ..image_conversion import to_rgb


@dataclass(frozen=True)
class ViewImage:
    """
    An image entity view of a knowledge graph, opened only when it is encoded.

    Args:
        root (`str`): The graph's root (`graph.root`), which the view's path may not leave.
        view (`EntityView`): An IMAGE or REGION view (a REGION is cropped to its box).
    """

    root: str
    view: EntityView

    def load(self) -> Image.Image:
        """The view's pixels as an 8-bit RGB image (see `open_view_image`)."""
        return open_view_image(self.root, self.view)


ImageLike = Image.Image | str | os.PathLike | ViewImage
"""An image given as a PIL image (any mode), a file path, or a graph view."""


def load_image(image: ImageLike) -> Image.Image:
    """An 8-bit RGB PIL image from a PIL image of any mode, a file path a user gave, or a [`ViewImage`]."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, ViewImage):
        return image.load()
    if isinstance(image, (str, os.PathLike)):
        return open_image(image, root=None)
    raise TypeError(f"An image must be a PIL.Image.Image, a path or a ViewImage, got {type(image).__name__}.")


@torch.no_grad()
def encode_texts(model, processor, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """
    L2-normalised projected text embeddings from the model's text tower (CLIP's `get_text_features`).

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with a `tokenizer`.
        texts (`Sequence[str]`): The texts.
        batch_size (`int`, *optional*, defaults to 256): Texts per forward pass.

    Returns:
        `torch.Tensor` of shape `(len(texts), projection_dim)`, float32 on the CPU.
    """
    model.eval()
    device = model.logit_scale.device
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = processor.tokenizer(
            list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt"
        )
        features = model.get_text_features(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        ).pooler_output
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.projection_dim)


@torch.no_grad()
def encode_images(model, processor, images: Sequence[ImageLike], batch_size: int = 64) -> torch.Tensor:
    """
    L2-normalised projected image embeddings from the model's vision tower (CLIP's `get_image_features`). Images
    given as paths are opened one batch at a time.

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with an `image_processor`.
        images (`Sequence[PIL.Image.Image | str | os.PathLike]`): The images.
        batch_size (`int`, *optional*, defaults to 64): Images per forward pass.

    Returns:
        `torch.Tensor` of shape `(len(images), projection_dim)`, float32 on the CPU.
    """
    model.eval()
    device = model.logit_scale.device
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [load_image(image) for image in images[start : start + batch_size]]
        pixel_values = processor.image_processor(batch, return_tensors="pt")["pixel_values"]
        features = model.get_image_features(
            pixel_values=pixel_values.to(device=device, dtype=model.dtype)
        ).pooler_output
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.projection_dim)
