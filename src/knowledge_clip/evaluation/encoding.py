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

    def project(batch: Sequence[str]) -> torch.Tensor:
        tokens = processor.tokenizer(list(batch), padding=True, truncation=True, return_tensors="pt").to(model.device)
        return model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output

    return _normalized_in_batches(model, texts, batch_size, project)


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

    def project(batch: Sequence[ImageLike]) -> torch.Tensor:
        pixel_values = processor.image_processor([load_image(image) for image in batch], return_tensors="pt")
        return model.get_image_features(
            pixel_values=pixel_values["pixel_values"].to(device=model.device, dtype=model.dtype)
        ).pooler_output

    return _normalized_in_batches(model, images, batch_size, project)


def _normalized_in_batches(model, items: Sequence, batch_size: int, project) -> torch.Tensor:
    """`project` (a batch of items to projected features) over `items` in batches of `batch_size`, in eval mode:
    L2-normalised float32 rows on the CPU, `(len(items), projection_dim)`."""
    model.eval()
    chunks = [
        F.normalize(project(items[start : start + batch_size]).float(), dim=-1).cpu()
        for start in range(0, len(items), batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.projection_dim)
