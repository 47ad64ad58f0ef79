# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Loaders of the published downstream (fine-tuning) datasets: VQAv2, SNLI-VE, NLVR2 and the Karpathy splits of
Flickr30K and COCO for image-text retrieval.

Each loader reads the files as they are distributed and returns plain examples (image paths and raw texts; the
processor truncates texts and counts what it cuts) plus a `DownstreamLoadReport`. A malformed record raises
`KnowledgeCLIPDataError` naming the file, the line (for JSON arrays: the 1-based record number in the list) and the
field; a record that is well formed but unusable (its image is missing, its question has no annotation) is a counted
skip. The formats, their sources and their pitfalls are described in `docs/data.md` ("Downstream datasets").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import reprlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

from ..errors import KnowledgeCLIPDataError, UnsafePathError
from ..metrics.vqa_accuracy.vqa_accuracy import answer_accuracy, normalize_answer
from .images import resolve_under_root
from .json_stream import JsonStreamReader, iter_jsonl_objects

__all__ = [
    "KARPATHY_SPLITS",
    "SNLI_VE_LABELS",
    "VQA_ANSWERS_PER_QUESTION",
    "DownstreamLoadReport",
    "ImageTextPairExample",
    "NLVR2Example",
    "RetrievalSplit",
    "VQAExample",
    "build_answer_vocabulary",
    "load_karpathy_retrieval",
    "load_nlvr2",
    "load_snli_ve",
    "load_vqa",
    "vqa_soft_scores",
]

logger = logging.getLogger(__name__)

SNLI_VE_LABELS = ("entailment", "neutral", "contradiction")
"""The SNLI-VE classes, in the order of their label indices."""
VQA_ANSWERS_PER_QUESTION = 10
"""Human answers per question in the VQAv2 train and val annotations."""
KARPATHY_SPLITS = ("train", "val", "test", "restval")
"""The `split` values of the Karpathy files (`restval` only in COCO's)."""

# test-dev2015 is a subset of the test2015 questions and is asked about test2015 images: there is no test-dev2015
# image set (the ViLT and VQA-toolkit loaders map it the same way).
_VQA_IMAGE_SET_OF_SUBTYPE = {"test-dev2015": "test2015"}
# `split-set_id-pair_id-sentence_id` (lil-lab/nlvr, nlvr2/README.md), e.g. `dev-850-0-0`, `test1-0-1-0`.
_NLVR2_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*-[0-9]+-[0-9]+-[0-9]+")
_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object"}


@dataclasses.dataclass
class DownstreamLoadReport:
    """What a downstream loader read, loaded and skipped.

    Every record read is loaded or skipped for exactly one reason: `records_read == loaded + sum(skipped.values())`.
    (The graph loaders' `LoadReport` counts triplets instead of examples, so it does not fit here.)

    Args:
        file (`str`): The file that was read.
        records_read (`int`): Records read: questions (plus annotations without a question), JSON lines, or the
            images of the requested Karpathy split(s).
        loaded (`int`): Records that became examples (for retrieval: gallery images).
        skipped (`dict[str, int]`): Reason -> number of records skipped for it.
        examples (`dict[str, list[str]]`): Reason -> up to `max_examples` skipped records, as ``"file:line: ..."``.
        counts (`dict[str, int]`): Other counted quantities that are not records, e.g. the captions loaded and the
            captions dropped with their missing image (retrieval).
        max_examples (`int`, *optional*, defaults to 5): How many skipped records are kept per reason.
    """

    file: str
    records_read: int = 0
    loaded: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    max_examples: int = 5

    def skip(self, reason: str, where: str) -> None:
        """Counts one record skipped for `reason`, keeping `where` (``"file:line: ..."``) while there is room."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.max_examples:
            examples.append(where)

    def summary(self) -> str:
        """One line: records read, loaded, skipped per reason, and the other counts."""
        text = f"{self.file}: {self.records_read:,} records read, {self.loaded:,} loaded"
        if self.skipped:
            text += ", skipped: " + ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.skipped.items()))
        if self.counts:
            text += "; " + ", ".join(f"{name} {count:,}" for name, count in self.counts.items())
        return text


def _log_report(report: DownstreamLoadReport) -> None:
    logger.info("%s", report.summary())
    if report.skipped:
        examples = "; ".join(
            f"({reason}) {where}" for reason in sorted(report.examples) for where in report.examples[reason]
        )
        skipped = sum(report.skipped.values())
        logger.warning("%s: skipped %d of %d records, e.g. %s", report.file, skipped, report.records_read, examples)


def _typed(record: dict, field: str, kind: type, file: str, line: int, required: bool = True) -> Any:
    """`record[field]`, checked to be of type `kind` (a bool is not an integer); None if absent and not required."""
    value = record.get(field)
    if value is None:
        if required:
            raise KnowledgeCLIPDataError("missing (or null)", file=file, line=line, field=field)
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise KnowledgeCLIPDataError(
            f"expected {_TYPE_NAMES[kind]}, got {reprlib.repr(value)}", file=file, line=line, field=field
        )
    return value


def _require_object(record: object, file: str, line: int) -> dict:
    if not isinstance(record, dict):
        raise KnowledgeCLIPDataError(f"expected an object, got {reprlib.repr(record)}", file=file, line=line)
    return record


class _ImageFolder:
    """Image paths inside one image directory: refuses paths that leave it, and tells whether a file exists from one
    directory listing per folder (a dataset has one to a hundred folders and up to ~80k images in each)."""

    def __init__(self, image_dir: str | os.PathLike):
        self.root = os.path.abspath(os.fspath(image_dir))
        self._listings: dict[str, set[str]] = {}

    def path(self, relative: str, file: str, line: int, field: str) -> str:
        """The absolute path of `relative` (read from `file:line`, `field`); `UnsafePathError` if it leaves the root."""
        try:
            resolve_under_root(relative, self.root)
        except UnsafePathError:
            raise UnsafePathError(
                f"image path {relative!r} leaves the image directory {self.root}", file=file, line=line, field=field
            ) from None
        return os.path.normpath(os.path.join(self.root, relative))

    def exists(self, path: str) -> bool:
        folder, name = os.path.split(path)
        if folder not in self._listings:
            self._listings[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        return name in self._listings[folder]


# ------------------------------------------------------------------------------------------------------------ VQAv2
@dataclasses.dataclass(frozen=True)
class VQAExample:
    """One VQAv2 question.

    Args:
        question_id (`int`): The question's id.
        image_id (`int`): The COCO image id.
        image (`str`): The image file: an absolute path when the loader was given `image_dir`, else the path relative
            to the COCO image root (`train2014/COCO_train2014_000000000009.jpg`).
        question (`str`): The question, as published.
        answers (`list[str]`): The 10 raw human answers (empty without annotations, e.g. test-dev and test).
        multiple_choice_answer (`str`, *optional*): The most frequent human answer, as published.
        question_type (`str`, *optional*): e.g. ``"what color is the"``.
        answer_type (`str`, *optional*): ``"yes/no"``, ``"number"`` or ``"other"``.
    """

    question_id: int
    image_id: int
    image: str
    question: str
    answers: list[str]
    multiple_choice_answer: str | None = None
    question_type: str | None = None
    answer_type: str | None = None


class _VQAQuestion(NamedTuple):
    record: int  # 1-based record number in `questions`
    question_id: int
    image_id: int
    question: str


class _VQAAnnotation(NamedTuple):
    record: int  # 1-based record number in `annotations`
    image_id: int
    answers: list[str]
    multiple_choice_answer: str | None
    question_type: str | None
    answer_type: str | None


# A record of a VQA file, parsed: its `record` field is its 1-based record number, for the duplicate-id error.
_VQARecord = TypeVar("_VQARecord", _VQAQuestion, _VQAAnnotation)


def _read_vqa_file(
    path: str, list_field: str, parse: Callable[[dict, int, int], _VQARecord]
) -> tuple[str | None, dict[int, _VQARecord]]:
    """
    A VQA questions or annotations file: its `data_subtype` and `parse(record, number, question_id)` of each record of
    its `list_field` list, by `question_id` in file order (a repeated id is an error naming both records).
    """
    data_subtype, parsed = None, None
    with JsonStreamReader(path) as reader:
        for key in reader.iter_object():
            if key == "data_subtype":
                data_subtype = reader.read_value(key)
            elif key == list_field:
                parsed = {}
                for number, record in enumerate(reader.iter_list(field=key), start=1):
                    record = _require_object(record, path, number)
                    question_id = _typed(record, "question_id", int, path, number)
                    if question_id in parsed:
                        raise KnowledgeCLIPDataError(
                            f"duplicate question_id {question_id} (also record {parsed[question_id].record})",
                            file=path,
                            line=number,
                            field="question_id",
                        )
                    parsed[question_id] = parse(record, number, question_id)
        reader.finish()
    if parsed is None:
        raise KnowledgeCLIPDataError(
            f"not a VQA {list_field} file: no `{list_field}` list", file=path, field=list_field
        )
    return _checked_subtype(data_subtype, path), parsed


def _read_vqa_questions(path: str) -> tuple[str | None, list[_VQAQuestion]]:
    def parse(record: dict, number: int, question_id: int) -> _VQAQuestion:
        image_id = _typed(record, "image_id", int, path, number)
        return _VQAQuestion(number, question_id, image_id, _typed(record, "question", str, path, number))

    data_subtype, questions = _read_vqa_file(path, "questions", parse)
    return data_subtype, list(questions.values())


def _read_vqa_annotations(path: str) -> tuple[str | None, dict[int, _VQAAnnotation]]:
    def parse(record: dict, number: int, question_id: int) -> _VQAAnnotation:
        return _VQAAnnotation(
            number,
            _typed(record, "image_id", int, path, number),
            _object_strings(record, "answers", "answer", path, number, VQA_ANSWERS_PER_QUESTION),
            _typed(record, "multiple_choice_answer", str, path, number, required=False),
            _typed(record, "question_type", str, path, number, required=False),
            _typed(record, "answer_type", str, path, number, required=False),
        )

    return _read_vqa_file(path, "annotations", parse)


def _checked_subtype(data_subtype: object, path: str) -> str | None:
    if data_subtype is not None and not isinstance(data_subtype, str):
        raise KnowledgeCLIPDataError(
            f"expected a string, got {reprlib.repr(data_subtype)}", file=path, field="data_subtype"
        )
    return data_subtype


def _object_strings(record: dict, field: str, key: str, path: str, number: int, count: int | None = None) -> list[str]:
    """`record[field]`, a list of objects (exactly `count` where given) with a string `key`: those strings."""
    items = record.get(field)
    if not (
        isinstance(items, list)
        and (count is None or len(items) == count)
        and all(isinstance(item, dict) and isinstance(item.get(key), str) for item in items)
    ):
        how_many = f"{count} " if count is not None else ""
        raise KnowledgeCLIPDataError(
            f"expected a list of {how_many}objects with a string `{key}`, got {reprlib.repr(items)}",
            file=path,
            line=number,
            field=field,
        )
    return [item[key] for item in items]


def _vqa_image_location(image_dir: str | os.PathLike, image_set: str) -> tuple[_ImageFolder, str]:
    """The image folder and the images' directory inside it: `image_dir` is the COCO image root (holding
    `train2014/`), or the image-set folder itself (`.../train2014`, as the COCO archives unpack)."""
    image_dir = os.fspath(image_dir)
    inside_root = os.path.isdir(os.path.join(image_dir, image_set))
    if not inside_root and os.path.basename(os.path.normpath(image_dir)) == image_set:
        return _ImageFolder(image_dir), ""
    return _ImageFolder(image_dir), image_set


def load_vqa(
    questions_file: str | os.PathLike,
    annotations_file: str | os.PathLike | None = None,
    image_dir: str | os.PathLike | None = None,
    image_subdir: str | None = None,
    check_images: bool = True,
) -> tuple[list[VQAExample], DownstreamLoadReport]:
    """
    Loads VQAv2 questions (`v2_OpenEnded_mscoco_<subtype>_questions.json`), with their answers when the annotations
    (`v2_mscoco_<subtype>_annotations.json`, train2014 and val2014 only) are given.

    The image of a question is `{image_dir}/{image set}/COCO_{image set}_{image_id:012d}.jpg`, the image set being
    `image_subdir`, by default the questions' `data_subtype`, except that test-dev2015 questions use the test2015
    images. `image_dir` may also be the image-set folder itself (`.../val2014`).

    Counted skips: a question without an annotation (`"no annotation"`, when annotations are given), an annotation
    whose question is not in the questions file (`"annotation without question"`, one record read), and a missing
    image file (`"missing image"`, when `check_images`). Raises `KnowledgeCLIPDataError` naming the file, the line
    and the field for: invalid JSON (the line is the JSON decoder's), a missing `questions`/`annotations` list, and
    malformed records (a missing `question`, a non-integer `question_id` or `image_id`, `answers` that are not 10
    objects with a string `answer`, a repeated `question_id`, an annotation whose `image_id` differs from its
    question's, annotations of another `data_subtype`). For these JSON arrays the "line" of a record is its 1-based
    record number in the list, since the published files are a single line.

    Args:
        questions_file (`str` or `os.PathLike`):
            The questions JSON file.
        annotations_file (`str` or `os.PathLike`, *optional*):
            The annotations JSON file of the same subtype; without it, `answers` are empty and the other answer
            fields None.
        image_dir (`str` or `os.PathLike`, *optional*):
            The COCO image root (or the image-set folder). Without it, `image` is relative to the COCO image root and
            nothing is checked.
        image_subdir (`str`, *optional*):
            The COCO image set (folder and file-name prefix), when the questions' `data_subtype` is absent or wrong.
        check_images (`bool`, *optional*, defaults to `True`):
            Skip (and count) questions whose image file does not exist.

    Returns:
        `tuple[list[VQAExample], DownstreamLoadReport]`: the examples, in the order of the questions file, and the
        report.

    Raises:
        FileNotFoundError: If a file does not exist.
        KnowledgeCLIPDataError: For the malformed inputs above.
        UnsafePathError: If `image_subdir` or `data_subtype` leads outside `image_dir`.
    """
    questions_file = os.fspath(questions_file)
    data_subtype, questions = _read_vqa_questions(questions_file)
    annotations = None
    if annotations_file is not None:
        annotations_file = os.fspath(annotations_file)
        annotations_subtype, annotations = _read_vqa_annotations(annotations_file)
        if None not in (annotations_subtype, data_subtype) and annotations_subtype != data_subtype:
            raise KnowledgeCLIPDataError(
                f"annotations of {annotations_subtype!r} for questions of {data_subtype!r}",
                file=annotations_file,
                field="data_subtype",
            )
    image_set = image_subdir or _VQA_IMAGE_SET_OF_SUBTYPE.get(data_subtype, data_subtype)
    if image_set is None:
        raise KnowledgeCLIPDataError(
            "no data_subtype to name the COCO image set; pass image_subdir", file=questions_file, field="data_subtype"
        )
    location = _vqa_image_location(image_dir, image_set) if image_dir is not None else None

    report = DownstreamLoadReport(file=questions_file)
    examples = []
    for question in questions:
        report.records_read += 1
        where = f"{questions_file}:{question.record}: question_id {question.question_id}"
        annotation = None
        if annotations is not None:
            annotation = annotations.pop(question.question_id, None)
            if annotation is None:
                report.skip("no annotation", where)
                continue
            if annotation.image_id != question.image_id:
                raise KnowledgeCLIPDataError(
                    f"image_id {annotation.image_id} differs from {question.image_id} of question "
                    f"{question.question_id} ({where})",
                    file=annotations_file,
                    line=annotation.record,
                    field="image_id",
                )
        file_name = f"COCO_{image_set}_{question.image_id:012d}.jpg"
        if location is None:
            image = f"{image_set}/{file_name}"
        else:
            folder, subdir = location
            image = folder.path(os.path.join(subdir, file_name), questions_file, question.record, "image_id")
            if check_images and not folder.exists(image):
                report.skip("missing image", f"{where}: {image}")
                continue
        examples.append(
            VQAExample(
                question_id=question.question_id,
                image_id=question.image_id,
                image=image,
                question=question.question,
                answers=annotation.answers if annotation else [],
                multiple_choice_answer=annotation.multiple_choice_answer if annotation else None,
                question_type=annotation.question_type if annotation else None,
                answer_type=annotation.answer_type if annotation else None,
            )
        )
    # What is left were annotations of questions that the questions file does not have.
    for question_id, annotation in (annotations or {}).items():
        report.records_read += 1
        report.skip(
            "annotation without question", f"{annotations_file}:{annotation.record}: question_id {question_id}"
        )
    report.loaded = len(examples)
    _log_report(report)
    return examples, report


def build_answer_vocabulary(examples: Iterable[VQAExample], size: int = 3129) -> list[str]:
    """
    The answer classes of VQA: the `size` most frequent `multiple_choice_answer`s, normalised with the official
    evaluator's `normalize_answer`, most frequent first, ties broken by the answer string (so the list is the same on
    every run and machine).

    This counts what the common implementations count (bottom-up-attention-vqa's `tools/compute_softscore.py`, ViLT's
    `write_vqa.py`): one `multiple_choice_answer` per question, not the 10 human answers. They keep the answers seen
    at least 9 times in train2014 + val2014 together, 3,129 answers, in first-seen order; passing the examples of both
    splits gives the same answers up to normalisation details, in a different order.

    Args:
        examples (`Iterable[VQAExample]`): Annotated questions (questions without a `multiple_choice_answer` are not
            counted).
        size (`int`, *optional*, defaults to 3129): Number of answers kept (fewer if fewer distinct answers exist).

    Returns:
        `list[str]`: the vocabulary; an answer's position is its class index.
    """
    return answer_vocabulary(
        (example.multiple_choice_answer for example in examples if example.multiple_choice_answer is not None), size
    )


def answer_vocabulary(answers: Iterable[str], size: int = 3129) -> list[str]:
    """
    The `size` most frequent of `answers` (one per question, raw), normalised with the official evaluator's
    `normalize_answer`, most frequent first, ties broken by the answer string: what [`build_answer_vocabulary`]
    counts, for answers that are not in `VQAExample`s.

    Args:
        answers (`Iterable[str]`): One answer per question (VQAv2's `multiple_choice_answer`).
        size (`int`, *optional*, defaults to 3129): Number of answers kept (fewer if fewer distinct answers exist).

    Returns:
        `list[str]`: the vocabulary; an answer's position is its class index.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    counts = Counter(normalize_answer(answer) for answer in answers)
    ranked = sorted(counts.items(), key=lambda answer_and_count: (-answer_and_count[1], answer_and_count[0]))
    return [answer for answer, _ in ranked[:size]]


def vqa_soft_scores(answers: list[str], vocabulary_index: dict[str, int]) -> tuple[list[int], list[float], int]:
    """
    The soft targets of one question: for each distinct normalised human answer that is in the vocabulary, the
    official VQA accuracy of predicting it, `answer_accuracy(answer, answers)`: the mean over the 10 leave-one-out
    subsets of `min(1, #matches / 3)`, i.e. 0.3, 0.6, 0.9 and 1.0 for an answer given by 1, 2, 3 and 4+ humans.

    As in the evaluator, the human answers are normalised only when they are not all identical: ten raw `"Yes"`
    give the vocabulary answer `"yes"` a score of 0 (the evaluator would score that prediction 0 too), so it is left
    out. Only answers with a positive score are returned.

    Args:
        answers (`list[str]`): The raw human answers (`VQAExample.answers`).
        vocabulary_index (`dict[str, int]`): Normalised answer -> class index (from `build_answer_vocabulary`).

    Returns:
        `tuple[list[int], list[float], int]`: the class indices, their scores (in the order the answers first appear),
        and the number of human answers whose normalised form is not in the vocabulary.
    """
    normalised = [normalize_answer(answer) for answer in answers]
    labels, scores = [], []
    for answer in dict.fromkeys(normalised):
        if answer in vocabulary_index:
            score = answer_accuracy(answer, answers)
            if score > 0:
                labels.append(vocabulary_index[answer])
                scores.append(score)
    outside = sum(answer not in vocabulary_index for answer in normalised)
    return labels, scores, outside


# ---------------------------------------------------------------------------------------------------------- SNLI-VE
@dataclasses.dataclass(frozen=True)
class ImageTextPairExample:
    """One image-text pair with a class label (SNLI-VE: the image is the premise, the text the hypothesis).

    Args:
        image (`str`): The absolute path of the image file.
        text (`str`): The text, as published.
        label (`int`): The class index.
        pair_id (`str`, *optional*): The record's id (SNLI-VE: `pairID`).
    """

    image: str
    text: str
    label: int
    pair_id: str | None = None


def _snli_ve_image_name(record: dict, path: str, line: int) -> tuple[str, str]:
    """The `(field, file name)` of a SNLI-VE record's Flickr30K image."""
    # The distributed files spell the field `Flikr30kID` (sic) with the `.jpg` suffix; files made with the generator
    # of necla-ml/SNLI-VE since April 2020 (commit 8484c15) spell it `Flickr30K_ID` and drop the suffix.
    for field in ("Flikr30kID", "Flickr30K_ID"):
        if field in record:
            value = _typed(record, field, str, path, line)
            return field, value if value.endswith(".jpg") else f"{value}.jpg"
    raise KnowledgeCLIPDataError("missing (nor is there a `Flickr30K_ID`)", file=path, line=line, field="Flikr30kID")


def load_snli_ve(
    jsonl_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    check_images: bool = True,
    labels: tuple[str, ...] = SNLI_VE_LABELS,
) -> tuple[list[ImageTextPairExample], DownstreamLoadReport]:
    """
    Loads a SNLI-VE split (`snli_ve_{train,dev,test}.jsonl`): the Flickr30K image named by `Flikr30kID` (sic; also
    `Flickr30K_ID`, as newer generated files spell it) is the premise, `sentence2` the hypothesis, `gold_label` the
    class.

    Blank lines are ignored (they are not records). Counted skip: a missing image file (`"missing image"`, when
    `check_images`). Raises `KnowledgeCLIPDataError` naming the file, line and field for a line that is not a JSON
    object, a missing or non-string image id or `sentence2`, and a `gold_label` not in `labels` (including `"-"`,
    SNLI's mark for pairs without a majority label, which SNLI-VE removed).

    Args:
        jsonl_file (`str` or `os.PathLike`):
            The JSON Lines file.
        image_dir (`str` or `os.PathLike`):
            The Flickr30K image folder (`flickr30k-images/`).
        check_images (`bool`, *optional*, defaults to `True`):
            Skip (and count) pairs whose image file does not exist.
        labels (`tuple[str, ...]`, *optional*, defaults to `SNLI_VE_LABELS`):
            The classes; a label's index in this tuple is the example's `label`.

    Returns:
        `tuple[list[ImageTextPairExample], DownstreamLoadReport]`: the examples, in file order, and the report.

    Raises:
        FileNotFoundError: If the file does not exist.
        KnowledgeCLIPDataError: For the malformed inputs above.
        UnsafePathError: If an image id leads outside `image_dir`.
    """
    path = os.fspath(jsonl_file)
    folder = _ImageFolder(image_dir)
    label_index = {label: index for index, label in enumerate(labels)}
    report = DownstreamLoadReport(file=path)
    examples = []
    for line, record in iter_jsonl_objects(path):
        report.records_read += 1
        field, image_name = _snli_ve_image_name(record, path, line)
        text = _typed(record, "sentence2", str, path, line)
        gold_label = record.get("gold_label")
        if not isinstance(gold_label, str) or gold_label not in label_index:
            no_consensus = " ('-' marks SNLI pairs without a majority label)" if gold_label == "-" else ""
            raise KnowledgeCLIPDataError(
                f"expected one of {list(labels)}, got {reprlib.repr(gold_label)}{no_consensus}",
                file=path,
                line=line,
                field="gold_label",
            )
        image = folder.path(image_name, path, line, field)
        if check_images and not folder.exists(image):
            report.skip("missing image", f"{path}:{line}: {image}")
            continue
        pair_id = _typed(record, "pairID", str, path, line, required=False)
        examples.append(ImageTextPairExample(image=image, text=text, label=label_index[gold_label], pair_id=pair_id))
    report.loaded = len(examples)
    _log_report(report)
    return examples, report


# ------------------------------------------------------------------------------------------------------------ NLVR2
@dataclasses.dataclass(frozen=True)
class NLVR2Example:
    """One NLVR2 statement about a pair of images.

    Args:
        identifier (`str`): e.g. ``"dev-850-0-0"`` (`split-set_id-pair_id-sentence_id`).
        sentence (`str`): The statement, as published.
        label (`int`): 1 if the statement is true of the pair, else 0.
        left_image (`str`): The absolute path of the left image (`...-img0.png`).
        right_image (`str`): The absolute path of the right image (`...-img1.png`).
    """

    identifier: str
    sentence: str
    label: int
    left_image: str
    right_image: str


def _nlvr2_label(value: object, path: str, line: int) -> int:
    # Checked by type first: `1 == True`, so a dict lookup would accept the integer 1 as a label.
    if isinstance(value, bool):
        return int(value)
    if value in ("True", "False") and isinstance(value, str):
        return int(value == "True")
    raise KnowledgeCLIPDataError(
        f'expected "True" or "False", got {reprlib.repr(value)}', file=path, line=line, field="label"
    )


def load_nlvr2(
    json_file: str | os.PathLike, image_dir: str | os.PathLike, check_images: bool = True
) -> tuple[list[NLVR2Example], DownstreamLoadReport]:
    """
    Loads an NLVR2 split (`train.json`, `dev.json`, `test1.json`: JSON Lines despite the extension).

    The images of identifier `dev-850-0-0` are `dev-850-0-img0.png` (left) and `dev-850-0-img1.png` (right): the
    identifier without its sentence number. They lie in `image_dir/<directory>/` for records with a `directory` field
    (train: 100 numbered folders), directly in `image_dir` otherwise (dev, test1).

    Blank lines are ignored. Counted skip: a pair with a missing image file (`"missing image"`, when
    `check_images`; the distributed archives lack some images). Raises `KnowledgeCLIPDataError` naming the file, line
    and field for a line that is not a JSON object, an `identifier` not of the form `<split>-<n>-<n>-<n>`, a missing
    or non-string `sentence`, a `label` other than `"True"`/`"False"` (or a JSON boolean), and a `directory` that is
    neither an integer nor a string.

    Args:
        json_file (`str` or `os.PathLike`):
            The JSON Lines file.
        image_dir (`str` or `os.PathLike`):
            The split's image folder (e.g. `images/train`, `dev`).
        check_images (`bool`, *optional*, defaults to `True`):
            Skip (and count) examples whose left or right image file does not exist.

    Returns:
        `tuple[list[NLVR2Example], DownstreamLoadReport]`: the examples, in file order, and the report.

    Raises:
        FileNotFoundError: If the file does not exist.
        KnowledgeCLIPDataError: For the malformed inputs above.
        UnsafePathError: If a `directory` leads outside `image_dir`.
    """
    path = os.fspath(json_file)
    folder = _ImageFolder(image_dir)
    report = DownstreamLoadReport(file=path)
    examples = []
    for line, record in iter_jsonl_objects(path):
        report.records_read += 1
        identifier = _typed(record, "identifier", str, path, line)
        if _NLVR2_IDENTIFIER.fullmatch(identifier) is None:
            raise KnowledgeCLIPDataError(
                f"expected <split>-<set>-<pair>-<sentence> (e.g. 'dev-850-0-0'), got {identifier!r}",
                file=path,
                line=line,
                field="identifier",
            )
        sentence = _typed(record, "sentence", str, path, line)
        label = _nlvr2_label(record.get("label"), path, line)
        directory = record.get("directory")
        if directory is not None and (isinstance(directory, bool) or not isinstance(directory, int | str)):
            raise KnowledgeCLIPDataError(
                f"expected an integer or a string, got {reprlib.repr(directory)}",
                file=path,
                line=line,
                field="directory",
            )
        pair = identifier.rsplit("-", 1)[0]
        subfolder, field = ("", "identifier") if directory is None else (str(directory), "directory")
        left, right = (
            folder.path(os.path.join(subfolder, f"{pair}-img{side}.png"), path, line, field) for side in (0, 1)
        )
        missing = [image for image in (left, right) if check_images and not folder.exists(image)]
        if missing:
            report.skip("missing image", f"{path}:{line}: {identifier}: {', '.join(missing)}")
            continue
        examples.append(NLVR2Example(identifier, sentence, label, left, right))
    report.loaded = len(examples)
    _log_report(report)
    return examples, report


# ------------------------------------------------------------------------------------------------ Karpathy retrieval
@dataclasses.dataclass
class RetrievalSplit:
    """An image-text retrieval split: a gallery of images and their captions.

    Args:
        images (`list[str]`): The absolute image paths (the gallery).
        captions (`list[str]`): Every caption, image after image.
        caption_image (`list[int]`): For each caption, the index in `images` of the image it describes.
    """

    images: list[str]
    captions: list[str]
    caption_image: list[int]

    def image_captions(self) -> list[list[int]]:
        """For each image, the indices in `captions` of its captions (the positives of image-to-text retrieval)."""
        per_image: list[list[int]] = [[] for _ in self.images]
        for caption, image in enumerate(self.caption_image):
            per_image[image].append(caption)
        return per_image


def load_karpathy_retrieval(
    json_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    split: str = "test",
    check_images: bool = True,
    include_restval: bool = True,
) -> tuple[RetrievalSplit, DownstreamLoadReport]:
    """
    Loads one split of Karpathy's `dataset_flickr30k.json` or `dataset_coco.json` as a retrieval gallery.

    An image is `image_dir/<filepath>/<filename>` when the record has a `filepath` (COCO: `train2014`, `val2014`),
    else `image_dir/<filename>` (Flickr30K). Its captions are the `raw` texts of its `sentences`, stripped.
    Records of other splits are not read (nor counted); `split="train"` includes `"restval"` (COCO's 30,504 images
    of val2014 outside the Karpathy val and test sets), as training recipes do, unless `include_restval=False`.

    Counted skip: a missing image file (`"missing image"`, when `check_images`); its captions are dropped with it and
    counted in `report.counts["captions dropped (missing image)"]`. Raises `KnowledgeCLIPDataError` naming the file,
    the line (the 1-based record number in `images`) and the field for invalid JSON, a file without an `images` list,
    and malformed records (a missing or non-string `split`, `filename` or `filepath`, `sentences` that are not
    objects with a string `raw`).

    Args:
        json_file (`str` or `os.PathLike`):
            The Karpathy JSON file.
        image_dir (`str` or `os.PathLike`):
            The image root (COCO: the folder holding `train2014/` and `val2014/`; Flickr30K: the image folder).
        split (`str`, *optional*, defaults to `"test"`):
            One of `KARPATHY_SPLITS`.
        check_images (`bool`, *optional*, defaults to `True`):
            Skip (and count) images that do not exist, with their captions.
        include_restval (`bool`, *optional*, defaults to `True`):
            Whether `split="train"` also reads the `"restval"` images.

    Returns:
        `tuple[RetrievalSplit, DownstreamLoadReport]`: the split, images in file order, and the report (records are
        images; `counts` holds the captions loaded and dropped).

    Raises:
        ValueError: If `split` is not one of `KARPATHY_SPLITS`.
        FileNotFoundError: If the file does not exist.
        KnowledgeCLIPDataError: For the malformed inputs above.
        UnsafePathError: If a `filepath`/`filename` leads outside `image_dir`.
    """
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"split must be one of {KARPATHY_SPLITS}, got {split!r}")
    wanted = {split, "restval"} if split == "train" and include_restval else {split}
    path = os.fspath(json_file)
    folder = _ImageFolder(image_dir)
    report = DownstreamLoadReport(file=path)
    images, captions, caption_image, dropped_captions = [], [], [], 0
    has_images = False
    with JsonStreamReader(path) as reader:
        for key in reader.iter_object():
            if key != "images":
                continue
            has_images = True
            for number, record in enumerate(reader.iter_list(field=key), start=1):
                record = _require_object(record, path, number)
                if _typed(record, "split", str, path, number) not in wanted:
                    continue
                report.records_read += 1
                file_name = _typed(record, "filename", str, path, number)
                file_path = _typed(record, "filepath", str, path, number, required=False)
                texts = [text.strip() for text in _object_strings(record, "sentences", "raw", path, number)]
                relative = os.path.join(file_path, file_name) if file_path else file_name
                image = folder.path(relative, path, number, "filename")
                if check_images and not folder.exists(image):
                    report.skip("missing image", f"{path}:{number}: {image}")
                    dropped_captions += len(texts)
                    continue
                caption_image.extend([len(images)] * len(texts))
                captions.extend(texts)
                images.append(image)
        reader.finish()
    if not has_images:
        raise KnowledgeCLIPDataError("not a Karpathy split file: no `images` list", file=path, field="images")
    report.loaded = len(images)
    report.counts["captions loaded"] = len(captions)
    if dropped_captions:
        report.counts["captions dropped (missing image)"] = dropped_captions
    _log_report(report)
    return RetrievalSplit(images=images, captions=captions, caption_image=caption_image), report
