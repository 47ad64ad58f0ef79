# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Zero-shot image classification from class names and prompt templates (CLIP's protocol)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .encoding import ImageLike, encode_images, encode_texts
from .metrics import count_at_least, load_metric

DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a {}.",
)
"""A short prompt ensemble in the style of CLIP's (each template holds one `{}` for the class name)."""


@torch.no_grad()
def class_embeddings(
    model, processor, class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES, batch_size: int = 256
) -> torch.Tensor:
    """
    One classifier weight per class: the normalised mean of the normalised text embeddings of its prompts.

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with a `tokenizer`.
        class_names (`Sequence[str]`): The class names.
        templates (`Sequence[str]`, *optional*, defaults to `DEFAULT_TEMPLATES`): Prompt templates with one `{}`.
        batch_size (`int`, *optional*, defaults to 256): Texts per forward pass.

    Returns:
        `torch.Tensor` of shape `(len(class_names), projection_dim)`.
    """
    if not templates or any(template.count("{}") != 1 for template in templates):
        raise ValueError(f"Every template must hold exactly one '{{}}', got {list(templates)}.")
    prompts = [template.format(name) for name in class_names for template in templates]
    embeds = encode_texts(model, processor, prompts, batch_size).view(len(class_names), len(templates), -1)
    return F.normalize(embeds.mean(dim=1), dim=-1)


@torch.no_grad()
def zero_shot_classification(
    model,
    processor,
    images: Sequence[ImageLike],
    labels: Sequence[int | str],
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    top_k: Sequence[int] = (1, 5),
    batch_size: int = 64,
) -> dict:
    """
    Zero-shot classification accuracy: each image goes to the class whose prompt embedding is most similar.

    Works for a plain `CLIPModel` and a [`KnowledgeCLIPModel`] alike (the CLIP towers). The rank of the true class
    counts ties against the model.

    Args:
        model (`CLIPModel` or [`KnowledgeCLIPModel`]): The model.
        processor: A processor with a `tokenizer` and an `image_processor`.
        images (`Sequence[PIL.Image.Image | str | os.PathLike]`): The images (paths are opened batch by batch).
        labels (`Sequence[int | str]`): The true class of each image, as an index into `class_names` or a name.
        class_names (`Sequence[str]`): The class names.
        templates (`Sequence[str]`, *optional*, defaults to `DEFAULT_TEMPLATES`): Prompt templates.
        top_k (`Sequence[int]`, *optional*, defaults to `(1, 5)`): The k of the top-k accuracies.
        batch_size (`int`, *optional*, defaults to 64): Images per forward pass.

    Returns:
        `dict`: `top{k}_accuracy` for each k, `num_examples`, `num_classes`, `num_templates`.
    """
    if len(images) != len(labels):
        raise ValueError(f"Got {len(images)} images but {len(labels)} labels.")
    if not images:
        raise ValueError("zero_shot_classification needs at least one image.")
    index_of_class = {name: index for index, name in enumerate(class_names)}
    label_ids = []
    for position, label in enumerate(labels):
        if isinstance(label, str):
            if label not in index_of_class:
                raise ValueError(f"labels[{position}] {label!r} is not one of the {len(class_names)} class names.")
            label = index_of_class[label]
        if not 0 <= int(label) < len(class_names):
            raise ValueError(f"labels[{position}] = {label} is not a class index in [0, {len(class_names)}).")
        label_ids.append(int(label))
    classifier = class_embeddings(model, processor, class_names, templates)
    label_ids = torch.tensor(label_ids)
    ranks = []
    for start in range(0, len(images), batch_size):
        image_embeds = encode_images(model, processor, images[start : start + batch_size], batch_size)
        scores = image_embeds @ classifier.T
        batch_labels = label_ids[start : start + batch_size]
        true_scores = scores[torch.arange(len(batch_labels)), batch_labels]
        ranks.append(1 + count_at_least(scores, true_scores, F.one_hot(batch_labels, len(class_names)).bool()))
    ranks = torch.cat(ranks).tolist()
    result = load_metric("topk_accuracy").compute(
        predictions=ranks, references=[len(class_names)] * len(ranks), top_k=list(top_k)
    )
    return result | {"num_classes": len(class_names), "num_templates": len(templates)}
