# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Processor class for Knowledge-CLIP: CLIP's text and image processing, plus knowledge batches (triplets and the
in-edge subgraphs of G2E) whose entities are texts or images.
"""

import hashlib
import importlib
from collections.abc import Iterable, Sequence

import torch
from PIL import Image
from transformers import BatchFeature, CLIPProcessor
from transformers.processing_utils import ProcessorMixin

from .image_conversion import to_rgb

Entity = str | Image.Image
"""A knowledge-graph entity as the processor takes it: a text or an image (any PIL mode)."""


class KnowledgeCLIPProcessor(ProcessorMixin):
    r"""
    Wraps a CLIP image processor and tokenizer, like `CLIPProcessor`, and the relation vocabulary of the E2R head.

    `processor(text=..., images=...)` is CLIP's. `processor(triplets=[(head, relation, tail), ...])` encodes a
    knowledge batch for [`KnowledgeCLIPModel`]: entities (str or `PIL.Image.Image`, any mode) and relations
    (strings of `relation_vocab`) are deduplicated, texts and images each go through their processor once, and the
    triplets become `(head slot, relation row, tail slot)` indices.

    Args:
        image_processor (`CLIPImageProcessor`, *optional*):
            The image processor.
        tokenizer (`CLIPTokenizer` or any tokenizer with a pad token, *optional*):
            The tokenizer.
        relation_vocab (`list[str]`, *optional*):
            The relation classes, in the order of `KnowledgeCLIPConfig.relation_vocab`.
    """

    def __init__(self, image_processor=None, tokenizer=None, relation_vocab: Sequence[str] | None = None, **kwargs):
        self.relation_vocab = list(relation_vocab) if relation_vocab is not None else []
        super().__init__(image_processor, tokenizer)

    @property
    def relation_index(self) -> dict[str, int]:
        return {relation: index for index, relation in enumerate(self.relation_vocab)}

    def __call__(
        self,
        text=None,
        images=None,
        triplets: Sequence[tuple[Entity, str, Entity]] | None = None,
        graph_edges: Sequence[tuple[Entity, str, Entity]] | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            text, images:
                CLIP inputs, processed exactly as `CLIPProcessor` does; pairs for the task models are `text[i]` with
                `images[i]`. When every item of `images` is a list or tuple of the same length k (NLVR2: left and
                right image of `text[i]`), `pixel_values` has shape `(batch_size, k, 3, H, W)`.
            triplets (`list[tuple]`, *optional*):
                `(head, relation, tail)` triplets with entities as `str` or `PIL.Image.Image`.
            graph_edges (`list[tuple]`, *optional*):
                In-edges `(head, relation, tail)` for G2E message passing, same form.

        Returns:
            [`BatchFeature`]: CLIP's fields, or the knowledge batch fields described in [`encode_knowledge`].
        """
        if triplets is None:
            if graph_edges is not None:
                raise ValueError("graph_edges needs triplets.")
            if isinstance(images, (list, tuple)) and images and all(isinstance(i, (list, tuple)) for i in images):
                per_example = {len(group) for group in images}
                if len(per_example) != 1:
                    raise ValueError(f"Every example needs the same number of images, got {sorted(per_example)}.")
                flat = [image for group in images for image in group]
                outputs = super().__call__(text=text, images=flat, **kwargs)
                pixel_values = outputs["pixel_values"]
                if isinstance(pixel_values, torch.Tensor):
                    outputs["pixel_values"] = pixel_values.view(len(images), -1, *pixel_values.shape[1:])
                return outputs
            return super().__call__(text=text, images=images, **kwargs)
        if text is not None or images is not None:
            raise ValueError("Pass either text/images (CLIP inputs) or triplets (a knowledge batch), not both.")
        entities, indexed_triplets, indexed_edges = [], [], []
        slot_of_key: dict[tuple, int] = {}

        def index_of(entity: Entity, where: str) -> int:
            key = entity_key(entity, where)
            if key not in slot_of_key:
                slot_of_key[key] = len(entities)
                entities.append(entity)
            return slot_of_key[key]

        for name, source, target in (
            ("triplets", triplets, indexed_triplets),
            ("graph_edges", graph_edges or (), indexed_edges),
        ):
            for i, triplet in enumerate(source):
                head, relation, tail = _unpack_triplet(triplet, f"{name}[{i}]")
                target.append((index_of(head, f"{name}[{i}] head"), relation, index_of(tail, f"{name}[{i}] tail")))
        entity_ids = [_stable_id(key) for key in slot_of_key]
        return self.encode_knowledge(
            entities, indexed_triplets, indexed_edges if graph_edges is not None else None, entity_ids, **kwargs
        )

    def encode_knowledge(
        self,
        entities: Sequence[Entity],
        triplets: Sequence[tuple[int, str, int]],
        graph_edges: Sequence[tuple[int, str, int]] | None = None,
        entity_ids: Sequence[int] | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """
        Encodes a knowledge batch given as an entity list and triplets that index into it (what the collator has).
        Entities sharing an id are encoded once.

        Args:
            entities (`list[str | PIL.Image.Image]`):
                The batch's entities.
            triplets (`list[tuple[int, str, int]]`):
                `(head index, relation text, tail index)` into `entities`.
            graph_edges (`list[tuple[int, str, int]]`, *optional*):
                In-edges for G2E, same form.
            entity_ids (`list[int]`, *optional*):
                KG id of each entity (false-negative masking across the batch); the position in `entities` when
                omitted.

        Returns:
            [`BatchFeature`] with `entity_input_ids`, `entity_attention_mask` (text entities, slots first),
            `entity_pixel_values` (image entities, slots after the texts), `entity_ids`, `entity_input_hashes`
            (see [`tower_input_hashes`]), `relation_input_ids`, `relation_attention_mask`, `relation_labels`,
            `triplets` `(num_triplets, 3)` and, when given, `graph_edges` `(num_edges, 3)`; indices are
            `(head slot, relation row, tail slot)`.
        """
        if return_tensors != "pt":
            raise ValueError(f"Knowledge batches are PyTorch tensors; got return_tensors={return_tensors!r}.")
        if not triplets:
            raise ValueError("A knowledge batch needs at least one triplet.")
        if entity_ids is None:
            entity_ids = list(range(len(entities)))
        if len(entity_ids) != len(entities):
            raise ValueError(f"Got {len(entity_ids)} entity_ids for {len(entities)} entities.")
        for index, entity in enumerate(entities):
            _check_entity(entity, f"entities[{index}]")

        # Texts first, then images, one slot per distinct id.
        first_index_of_id: dict[int, int] = {}
        for index, entity_id in enumerate(entity_ids):
            first_index_of_id.setdefault(int(entity_id), index)
        text_indices = [i for i in first_index_of_id.values() if isinstance(entities[i], str)]
        image_indices = [i for i in first_index_of_id.values() if isinstance(entities[i], Image.Image)]
        slot_of_id = {int(entity_ids[i]): slot for slot, i in enumerate(text_indices + image_indices)}

        relation_index = self.relation_index
        relation_rows: dict[str, int] = {}

        def encode(rows: Sequence[tuple[int, str, int]], name: str) -> torch.Tensor:
            encoded = []
            for i, row in enumerate(rows):
                head, relation, tail = _unpack_triplet(row, f"{name}[{i}]")
                for part, index in (("head", head), ("tail", tail)):
                    if not isinstance(index, int) or not 0 <= index < len(entities):
                        raise ValueError(
                            f"{name}[{i}] {part} {index!r} is not an index into the {len(entities)} entities."
                        )
                if relation not in relation_index:
                    raise ValueError(
                        f"{name}[{i}] relation {relation!r} is not in the relation vocabulary "
                        f"({len(relation_index)} relations: {self.relation_vocab[:10]}...)."
                    )
                row_of_relation = relation_rows.setdefault(relation, len(relation_rows))
                encoded.append((slot_of_id[int(entity_ids[head])], row_of_relation, slot_of_id[int(entity_ids[tail])]))
            return torch.tensor(encoded, dtype=torch.long).view(-1, 3)

        data = {"triplets": encode(triplets, "triplets")}
        if graph_edges is not None:
            data["graph_edges"] = encode(graph_edges, "graph_edges")

        if text_indices:
            texts = self.tokenizer(
                [entities[i] for i in text_indices], padding=True, truncation=True, return_tensors="pt", **kwargs
            )
            data["entity_input_ids"] = texts["input_ids"]
            data["entity_attention_mask"] = texts["attention_mask"]
        if image_indices:
            images = [to_rgb(entities[i]) for i in image_indices]
            data["entity_pixel_values"] = self.image_processor(images, return_tensors="pt")["pixel_values"]
        data["entity_ids"] = torch.tensor([int(entity_ids[i]) for i in text_indices + image_indices], dtype=torch.long)
        data["entity_input_hashes"] = tower_input_hashes(
            data.get("entity_input_ids"), data.get("entity_attention_mask"), data.get("entity_pixel_values")
        )
        relations = self.tokenizer(list(relation_rows), padding=True, truncation=True, return_tensors="pt", **kwargs)
        data["relation_input_ids"] = relations["input_ids"]
        data["relation_attention_mask"] = relations["attention_mask"]
        data["relation_labels"] = torch.tensor([relation_index[r] for r in relation_rows], dtype=torch.long)
        return BatchFeature(data=data, tensor_type="pt")

    @staticmethod
    def build_answer_vocabulary(answers: Iterable[str], size: int = 3129) -> list[str]:
        """
        The answer classes of VQA from the training questions' answers: the `size` most frequent, normalised as the
        official VQA evaluator normalises answers, most frequent first (ties by the answer string). Put them in the
        task model's config as `id2label`.

        Args:
            answers (`Iterable[str]`): One answer per question (VQAv2's `multiple_choice_answer`).
            size (`int`, *optional*, defaults to 3129): The standard VQAv2 size.

        Returns:
            `list[str]`: the vocabulary; an answer's position is its class index.
        """
        return _package_downstream("build_answer_vocabulary").answer_vocabulary(answers, size)

    @staticmethod
    def answer_targets(answers: Sequence[Sequence[str]], answer_vocab: Sequence[str]) -> torch.Tensor:
        """
        The soft targets of VQA for `KnowledgeCLIPForQuestionAnswering(labels=...)`: for each question and each
        vocabulary answer, the official VQA accuracy of predicting it from the question's human answers, the mean
        over the 10 leave-one-out subsets of `min(1, #matches / 3)` (0.3, 0.6, 0.9, 1.0 for 1, 2, 3, 4+ humans).

        Args:
            answers (`Sequence[Sequence[str]]`): The raw human answers of each question (10 in VQAv2).
            answer_vocab (`Sequence[str]`): The answer classes in class order (`config.id2label`'s values).

        Returns:
            `torch.FloatTensor` of shape `(len(answers), len(answer_vocab))`.
        """
        downstream = _package_downstream("answer_targets")
        index = {answer: position for position, answer in enumerate(answer_vocab)}
        targets = torch.zeros(len(answers), len(index))
        for row, question_answers in enumerate(answers):
            if isinstance(question_answers, str):
                raise ValueError(f"answers[{row}] must be the list of a question's human answers, not one string.")
            labels, scores, _ = downstream.vqa_soft_scores(list(question_answers), index)
            targets[row, labels] = torch.tensor(scores)
        return targets

    def to_clip_processor(self) -> CLIPProcessor:
        """A stock `CLIPProcessor` with the same image processor and tokenizer (for the CLIP export)."""
        return CLIPProcessor(image_processor=self.image_processor, tokenizer=self.tokenizer)

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys(self.tokenizer.model_input_names + self.image_processor.model_input_names))


def _package_downstream(method: str):
    """`knowledge_clip.data.downstream`, which holds the official VQA answer normalisation the answer methods use.
    Imported by its absolute name: this file also runs as the custom code of a Hub repository, without the package
    beside it."""
    try:
        return importlib.import_module("knowledge_clip.data.downstream")
    except ImportError:
        raise ImportError(
            f"KnowledgeCLIPProcessor.{method} needs the knowledge_clip package (pip install knowledge-clip): the "
            "official VQA answer normalisation lives there, not in the processor's custom code."
        ) from None


def _unpack_triplet(triplet, where: str) -> tuple:
    if not isinstance(triplet, (tuple, list)) or len(triplet) != 3:
        raise ValueError(f"{where} must be a (head, relation, tail) triple, got {triplet!r}.")
    head, relation, tail = triplet
    if not isinstance(relation, str) or not relation.strip():
        raise ValueError(f"{where} relation must be a non-empty string, got {relation!r}.")
    return head, relation, tail


def _check_entity(entity, where: str) -> None:
    if isinstance(entity, str):
        if not entity.strip():
            raise ValueError(f"{where} is an empty text entity.")
    elif isinstance(entity, Image.Image):
        if entity.width == 0 or entity.height == 0:
            raise ValueError(f"{where} is an empty image ({entity.width}x{entity.height}).")
    else:
        raise ValueError(f"{where} must be a str or a PIL.Image.Image, got {type(entity).__name__}.")


def entity_key(entity: Entity, where: str = "entity") -> tuple:
    """A content key under which equal entities deduplicate: the text, or the image's mode, size and pixels."""
    _check_entity(entity, where)
    if isinstance(entity, str):
        return ("text", entity)
    return ("image", entity.mode, entity.size, hashlib.blake2b(entity.tobytes(), digest_size=16).hexdigest())


def tower_input_hashes(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, pixel_values: torch.Tensor | None
) -> torch.Tensor:
    """
    A 63-bit hash of each entity slot's tower input: the real token ids of each text row, then the pixel values (with
    their shape) of each image row. Two slots get the same hash when their inputs are equal, byte for byte, and
    different ones otherwise (but for a 2^-63 chance per pair): what a cache of a frozen model's outputs can be keyed
    on (`knowledge_clip.training.TeacherEmbeddingCache`). Computed where batches are built, in the data loader's
    workers, so that the training step never reads the inputs back from the accelerator.

    Args:
        input_ids, attention_mask (`torch.Tensor` of shape `(num_texts, seq_len)`, *optional*): the texts.
        pixel_values (`torch.Tensor` of shape `(num_images, 3, H, W)`, *optional*): the images.

    Returns:
        `torch.LongTensor` of shape `(num_texts + num_images,)`.
    """

    def digest(kind: bytes, values: torch.Tensor) -> int:
        values = values.contiguous().cpu()
        header = kind + repr((str(values.dtype), tuple(values.shape))).encode()
        hashed = hashlib.blake2b(header, digest_size=8)
        hashed.update(values.view(-1).view(torch.uint8).numpy())
        return int.from_bytes(hashed.digest(), "big") >> 1

    hashes = []
    if input_ids is not None:
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        hashes += [digest(b"text", ids[row_mask]) for ids, row_mask in zip(input_ids, mask)]
    if pixel_values is not None:
        hashes += [digest(b"image", pixels) for pixels in pixel_values]
    return torch.tensor(hashes, dtype=torch.long)


def _stable_id(key: tuple) -> int:
    """A 63-bit id of a content key that is the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big") >> 1


__all__ = ["KnowledgeCLIPProcessor", "tower_input_hashes"]
