"""The downstream dataset loaders (VQAv2, SNLI-VE, NLVR2, Karpathy retrieval) on tiny files in the published formats:
what they read, every bad input (an error naming file, line and field, or an exact counted skip), the VQA answer
vocabulary and soft scores."""

import json
import logging
import random

import pytest
from PIL import Image

from knowledge_clip.data.downstream import (
    SNLI_VE_LABELS,
    DownstreamLoadReport,
    ImageTextPairExample,
    NLVR2Example,
    RetrievalSplit,
    VQAExample,
    build_answer_vocabulary,
    load_karpathy_retrieval,
    load_nlvr2,
    load_snli_ve,
    load_vqa,
    vqa_soft_scores,
)
from knowledge_clip.errors import KnowledgeCLIPDataError, UnsafePathError


def save_image(path, format="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(path, format=format)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def assert_consistent(report):
    assert isinstance(report, DownstreamLoadReport)
    assert report.records_read == report.loaded + sum(report.skipped.values())


def assert_located(error, path, line, field):
    assert f"{path}:{line}: {field}" in str(error.value)
    assert (error.value.file, error.value.line, error.value.field) == (str(path), line, field)


# ------------------------------------------------------------------------------------------------------------ VQAv2
def vqa_annotation(question_id, image_id, answers, answer_type="other"):
    return {
        "question_type": "what color is the",
        "multiple_choice_answer": answers[0],
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)],
        "image_id": image_id,
        "answer_type": answer_type,
        "question_id": question_id,
    }


def write_vqa(root, subtype="val2014", questions=None, annotations=None, images=(1, 2)):
    """Questions and annotations files as published; images in `root/images/<image set>/`."""
    header = {"info": {"year": 2017}, "license": {"name": "CC"}, "data_type": "mscoco", "data_subtype": subtype}
    if questions is None:
        questions = [
            {"image_id": 1, "question": "What color is the cube?", "question_id": 10},
            {"image_id": 1, "question": "How many cubes?", "question_id": 11},
            {"image_id": 2, "question": "Is it red?", "question_id": 20},
        ]
    if annotations is None:
        annotations = [
            vqa_annotation(10, 1, ["red"] * 9 + ["dark red"]),
            vqa_annotation(11, 1, ["2"] * 3 + ["3"] * 7, "number"),
            vqa_annotation(20, 2, ["yes"] * 10, "yes/no"),
        ]
    # `data_subtype` after the list: the published files' key order is not fixed.
    questions_file = root / f"v2_OpenEnded_mscoco_{subtype}_questions.json"
    questions_file.write_text(json.dumps({"task_type": "Open-Ended", "questions": questions, **header}))
    annotations_file = root / f"v2_mscoco_{subtype}_annotations.json"
    annotations_file.write_text(json.dumps({**header, "annotations": annotations}))
    image_set = "test2015" if subtype == "test-dev2015" else subtype
    for image_id in images:
        save_image(root / "images" / image_set / f"COCO_{image_set}_{image_id:012d}.jpg")
    return questions_file, annotations_file


def test_load_vqa_reads_questions_answers_and_image_paths(tmp_path):
    questions_file, annotations_file = write_vqa(tmp_path)
    examples, report = load_vqa(questions_file, annotations_file, tmp_path / "images")
    image_1 = str(tmp_path / "images" / "val2014" / "COCO_val2014_000000000001.jpg")
    assert examples[0] == VQAExample(
        question_id=10,
        image_id=1,
        image=image_1,
        question="What color is the cube?",
        answers=["red"] * 9 + ["dark red"],
        multiple_choice_answer="red",
        question_type="what color is the",
        answer_type="other",
    )
    assert [example.question_id for example in examples] == [10, 11, 20]
    assert examples[1].image == image_1 and examples[1].answer_type == "number"
    assert examples[2].image.endswith("val2014/COCO_val2014_000000000002.jpg")
    assert (report.records_read, report.loaded, report.skipped) == (3, 3, {})
    assert report.summary() == f"{questions_file}: 3 records read, 3 loaded"


def test_load_vqa_image_dir_may_be_the_image_set_folder(tmp_path):
    questions_file, annotations_file = write_vqa(tmp_path)
    examples, report = load_vqa(questions_file, annotations_file, tmp_path / "images" / "val2014")
    assert examples[0].image == str(tmp_path / "images" / "val2014" / "COCO_val2014_000000000001.jpg")
    assert report.loaded == 3


def test_load_vqa_test_dev_questions_use_test2015_images(tmp_path):
    questions_file, _ = write_vqa(tmp_path, subtype="test-dev2015")
    examples, report = load_vqa(questions_file, image_dir=tmp_path / "images")
    assert examples[0].image == str(tmp_path / "images" / "test2015" / "COCO_test2015_000000000001.jpg")
    assert examples[0].answers == [] and examples[0].multiple_choice_answer is None
    assert (report.loaded, report.skipped) == (3, {})


def test_load_vqa_without_image_dir_gives_paths_relative_to_the_coco_root(tmp_path):
    questions_file, _ = write_vqa(tmp_path, images=())
    examples, report = load_vqa(questions_file)
    assert examples[2].image == "val2014/COCO_val2014_000000000002.jpg"
    assert report.loaded == 3


def test_load_vqa_image_subdir_overrides_data_subtype(tmp_path):
    questions_file, annotations_file = write_vqa(tmp_path, images=())
    for image_id in (1, 2):
        save_image(tmp_path / "images" / "train2014" / f"COCO_train2014_{image_id:012d}.jpg")
    examples, _ = load_vqa(questions_file, annotations_file, tmp_path / "images", image_subdir="train2014")
    assert examples[0].image.endswith("train2014/COCO_train2014_000000000001.jpg")
    with pytest.raises(UnsafePathError):
        load_vqa(questions_file, annotations_file, tmp_path / "images", image_subdir="../outside")


def test_load_vqa_counts_skips(tmp_path, caplog):
    questions = [
        {"image_id": 1, "question": "Q1?", "question_id": 10},
        {"image_id": 1, "question": "Q2?", "question_id": 11},  # no annotation
        {"image_id": 3, "question": "Q3?", "question_id": 30},  # image 3 missing
    ]
    annotations = [
        vqa_annotation(10, 1, ["a"] * 10),
        vqa_annotation(30, 3, ["b"] * 10),
        vqa_annotation(40, 1, ["c"] * 10),  # its question is absent
        vqa_annotation(41, 1, ["c"] * 10),  # its question is absent
    ]
    questions_file, annotations_file = write_vqa(tmp_path, questions=questions, annotations=annotations)
    with caplog.at_level(logging.INFO, logger="knowledge_clip.data.downstream"):
        examples, report = load_vqa(questions_file, annotations_file, tmp_path / "images")
    assert [example.question_id for example in examples] == [10]
    assert report.skipped == {"no annotation": 1, "missing image": 1, "annotation without question": 2}
    assert (report.records_read, report.loaded) == (5, 1)  # 3 questions + 2 annotations without one
    assert_consistent(report)
    warning = next(record for record in caplog.records if record.levelno == logging.WARNING)
    assert "COCO_val2014_000000000003.jpg" in warning.getMessage()
    assert f"{annotations_file}:3: question_id 40" in warning.getMessage()
    # Without checking images, the question of the missing image is kept.
    _, unchecked = load_vqa(questions_file, annotations_file, tmp_path / "images", check_images=False)
    assert unchecked.skipped == {"no annotation": 1, "annotation without question": 2}


@pytest.mark.parametrize(
    ("questions_file_has_error", "bad_record", "field"),
    [
        (True, {"image_id": 1, "question_id": 11}, "question"),
        (True, {"image_id": "1", "question": "Q?", "question_id": 11}, "image_id"),
        (True, {"image_id": 1, "question": "Q?", "question_id": 11.0}, "question_id"),
        (False, vqa_annotation(11, 1, ["a"] * 9), "answers"),
        (False, {**vqa_annotation(11, 1, ["a"] * 10), "answers": [{"answer": "a"}] * 9 + [{"text": "a"}]}, "answers"),
        (False, {**vqa_annotation(11, 1, ["a"] * 10), "answers": "a"}, "answers"),
        (False, vqa_annotation(11, 2, ["a"] * 10), "image_id"),  # differs from the question's image
    ],
)
def test_load_vqa_malformed_records_name_file_record_and_field(tmp_path, questions_file_has_error, bad_record, field):
    good_question = {"image_id": 1, "question": "Q?", "question_id": 10}
    good_annotation = vqa_annotation(10, 1, ["a"] * 10)
    if questions_file_has_error:
        questions, annotations = [good_question, bad_record], [good_annotation]
    else:
        questions = [good_question, {"image_id": 1, "question": "Q2?", "question_id": 11}]
        annotations = [good_annotation, bad_record]
    questions_file, annotations_file = write_vqa(tmp_path, questions=questions, annotations=annotations)
    with pytest.raises(KnowledgeCLIPDataError) as error:
        load_vqa(questions_file, annotations_file, tmp_path / "images")
    # The second record of the list: for JSON arrays the "line" is the 1-based record number.
    assert_located(error, questions_file if questions_file_has_error else annotations_file, 2, field)


@pytest.mark.parametrize("in_questions_file", [True, False])
def test_load_vqa_duplicate_question_id_names_both_records(tmp_path, in_questions_file):
    questions = [
        {"image_id": 1, "question": "Q?", "question_id": 10},
        {"image_id": 1, "question": "R?", "question_id": 11},
    ]
    annotations = [vqa_annotation(10, 1, ["a"] * 10), vqa_annotation(11, 1, ["b"] * 10)]
    if in_questions_file:
        questions.append({"image_id": 2, "question": "S?", "question_id": 10})
    else:
        annotations.append(vqa_annotation(10, 1, ["c"] * 10))
    questions_file, annotations_file = write_vqa(tmp_path, questions=questions, annotations=annotations)
    with pytest.raises(KnowledgeCLIPDataError, match=r"duplicate question_id 10 \(also record 1\)") as error:
        load_vqa(questions_file, annotations_file, tmp_path / "images")
    assert_located(error, questions_file if in_questions_file else annotations_file, 3, "question_id")


def test_load_vqa_file_errors(tmp_path):
    questions_file, annotations_file = write_vqa(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere_questions.json"):
        load_vqa(tmp_path / "nowhere_questions.json")
    broken = tmp_path / "broken_questions.json"
    broken.write_text('{"data_subtype": "val2014",\n "questions": [\n  {"image_id": 1,, "question": "Q?"}]}')
    with pytest.raises(KnowledgeCLIPDataError, match=r"broken_questions.json:3: questions: invalid JSON"):
        load_vqa(broken)
    not_questions = tmp_path / "other.json"
    not_questions.write_text('{"data_subtype": "val2014"}')
    with pytest.raises(KnowledgeCLIPDataError, match=r"other.json: questions: not a VQA questions file"):
        load_vqa(not_questions)
    train_annotations = tmp_path / "train_annotations.json"
    train_annotations.write_text(json.dumps({"data_subtype": "train2014", "annotations": []}))
    with pytest.raises(KnowledgeCLIPDataError, match=r"train_annotations.json: data_subtype: annotations of"):
        load_vqa(questions_file, train_annotations)


# ------------------------------------------------------------------------------------------ VQA answers and targets
def test_build_answer_vocabulary_counts_normalised_multiple_choice_answers_deterministically():
    answers = ["yes", "Yes", "no", "two", "2", "red", "blue", "blue", "red", None]
    examples = [
        VQAExample(i, 1, "x.jpg", "Q?", ["other"] * 10 if answer else [], multiple_choice_answer=answer)
        for i, answer in enumerate(answers)
    ]
    # Normalised counts: yes 2, 2 2 ("two"), red 2, blue 2, no 1; the human `answers` are not counted. Ties are
    # ordered by the answer string.
    assert build_answer_vocabulary(examples) == ["2", "blue", "red", "yes", "no"]
    assert build_answer_vocabulary(examples, size=3) == ["2", "blue", "red"]
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)
    assert build_answer_vocabulary(shuffled, size=3) == ["2", "blue", "red"]
    with pytest.raises(ValueError):
        build_answer_vocabulary(examples, size=0)


def test_vqa_soft_scores_hand_cases():
    index = {"yes": 0, "2": 1, "3": 2, "dog": 3}
    assert vqa_soft_scores(["yes"] * 10, index) == ([0], [1.0], 0)
    # 3 x "2", 7 x "3". Official accuracy: the mean over the 10 leave-one-out subsets of min(1, matches / 3).
    # "2": leaving out one of its 3 answers leaves 2 matches (2/3), leaving out a "3" leaves 3 (1):
    #      (3 * 2/3 + 7 * 1) / 10 = 9 / 10 = 0.9.
    # "3": any subset keeps at least 6 matches: 1.0.
    labels, scores, outside = vqa_soft_scores(["2"] * 3 + ["3"] * 7, index)
    assert labels == [1, 2] and scores == pytest.approx([0.9, 1.0]) and outside == 0
    # Mixed answers are normalised ("Two" -> "2"); a single matching answer scores 1 * 9 / 30 = 0.3.
    labels, scores, outside = vqa_soft_scores(["Two"] * 3 + ["3"] * 6 + ["dog"], index)
    assert labels == [1, 2, 3] and scores == pytest.approx([0.9, 1.0, 0.3]) and outside == 0
    # Answers outside the vocabulary are counted, one per human answer.
    assert vqa_soft_scores(["cat", "cat"] + ["dog"] * 8, index) == ([3], [1.0], 2)
    # Ten identical raw answers are compared unnormalised, as the evaluator does: "yes" earns 0 against ten "Yes".
    assert vqa_soft_scores(["Yes"] * 10, index) == ([], [], 0)


# ---------------------------------------------------------------------------------------------------------- SNLI-VE
DELETED = object()  # a field left out of a record


def snli_ve_record(image, hypothesis, label, pair_id, field="Flikr30kID"):
    return {
        "annotator_labels": [label],
        "captionID": f"{pair_id.split('#')[0]}#0",
        field: image,
        "gold_label": label,
        "pairID": pair_id,
        "sentence1": "Two dogs run on the grass.",
        "sentence2": hypothesis,
    }


def test_load_snli_ve_reads_pairs(tmp_path):
    for name in ("100.jpg", "101.jpg"):
        save_image(tmp_path / "flickr30k-images" / name)
    path = tmp_path / "snli_ve_dev.jsonl"
    lines = [
        json.dumps(snli_ve_record("100.jpg", "Animals are outside.", "entailment", "100.jpg#0r1e")),
        "",  # blank lines are not records
        json.dumps(snli_ve_record("101", "A cat sleeps.", "contradiction", "101.jpg#0r1c", field="Flickr30K_ID")),
        json.dumps(snli_ve_record("100.jpg", "  The dogs are brothers. ", "neutral", "100.jpg#0r1n")),
    ]
    path.write_text("\n".join(lines) + "\n\n")
    examples, report = load_snli_ve(path, tmp_path / "flickr30k-images")
    folder = tmp_path / "flickr30k-images"
    assert examples == [
        ImageTextPairExample(str(folder / "100.jpg"), "Animals are outside.", 0, "100.jpg#0r1e"),
        ImageTextPairExample(str(folder / "101.jpg"), "A cat sleeps.", 2, "101.jpg#0r1c"),
        ImageTextPairExample(str(folder / "100.jpg"), "  The dogs are brothers. ", 1, "100.jpg#0r1n"),  # kept raw
    ]
    assert SNLI_VE_LABELS[examples[1].label] == "contradiction"
    assert (report.records_read, report.loaded, report.skipped) == (3, 3, {})


def test_load_snli_ve_counts_missing_images(tmp_path):
    save_image(tmp_path / "images" / "100.jpg")
    path = tmp_path / "snli_ve_test.jsonl"
    write_jsonl(
        path,
        [
            snli_ve_record("100.jpg", "h1", "entailment", "p1"),
            snli_ve_record("102.jpg", "h2", "neutral", "p2"),
            snli_ve_record("103.jpg", "h3", "neutral", "p3"),
        ],
    )
    examples, report = load_snli_ve(path, tmp_path / "images")
    assert [example.pair_id for example in examples] == ["p1"]
    assert report.skipped == {"missing image": 2}
    assert report.examples["missing image"][0] == f"{path}:2: {tmp_path / 'images' / '102.jpg'}"
    assert_consistent(report)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"gold_label": "maybe"}, "gold_label", "expected one of"),
        ({"gold_label": "-"}, "gold_label", "without a majority label"),
        ({"gold_label": None}, "gold_label", "expected one of"),
        ({"sentence2": 3}, "sentence2", "expected a string"),
        ({"Flikr30kID": DELETED}, "Flikr30kID", "missing"),
        ({"Flikr30kID": 100}, "Flikr30kID", "expected a string"),
    ],
)
def test_load_snli_ve_bad_records_name_file_line_and_field(tmp_path, change, field, message):
    save_image(tmp_path / "images" / "100.jpg")
    path = tmp_path / "snli_ve_train.jsonl"
    bad = {**snli_ve_record("100.jpg", "h", "entailment", "p2"), **change}
    bad = {key: value for key, value in bad.items() if value is not DELETED}
    path.write_text(json.dumps(snli_ve_record("100.jpg", "h", "entailment", "p1")) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(KnowledgeCLIPDataError, match=message) as error:
        load_snli_ve(path, tmp_path / "images")
    assert_located(error, path, 3, field)  # line 3: the blank line 2 counts as a line of the file


def test_load_snli_ve_refuses_paths_leaving_the_image_dir(tmp_path):
    (tmp_path / "images").mkdir()
    path = tmp_path / "snli_ve_dev.jsonl"
    write_jsonl(path, [snli_ve_record("../secret.jpg", "h", "entailment", "p1")])
    with pytest.raises(UnsafePathError) as error:
        load_snli_ve(path, tmp_path / "images")
    assert_located(error, path, 1, "Flikr30kID")


# ------------------------------------------------------------------------------------------------------------ NLVR2
def nlvr2_record(identifier, label="True", **extra):
    return {
        "validation": {"61": label},
        "sentence": f"The sentence of {identifier}.",
        "left_url": "https://example.com/left.jpg",
        "writer": "61",
        "label": label,
        "right_url": "https://example.com/right.jpg",
        "synset": "beer bottle",
        "query": "some beer bottles38",
        "identifier": identifier,
        **extra,
    }


def test_load_nlvr2_reads_train_subfolders_and_flat_dev(tmp_path):
    train_dir = tmp_path / "images" / "train"
    for folder, pair in (("0", "train-10-0"), ("1", "train-11-2")):
        for side in (0, 1):
            save_image(train_dir / folder / f"{pair}-img{side}.png", format="PNG")
    train = tmp_path / "train.json"
    write_jsonl(
        train,
        [
            nlvr2_record("train-10-0-0", "True", directory=0),  # the published value is a number
            nlvr2_record("train-10-0-1", "False", directory=0),
            nlvr2_record("train-11-2-0", True, directory="1"),
        ],
    )
    examples, report = load_nlvr2(train, train_dir)
    assert examples[0] == NLVR2Example(
        "train-10-0-0",
        "The sentence of train-10-0-0.",
        1,
        str(train_dir / "0" / "train-10-0-img0.png"),
        str(train_dir / "0" / "train-10-0-img1.png"),
    )
    assert [example.label for example in examples] == [1, 0, 1]
    assert examples[2].right_image == str(train_dir / "1" / "train-11-2-img1.png")
    assert (report.records_read, report.loaded) == (3, 3)

    dev_dir = tmp_path / "dev"
    for side in (0, 1):
        save_image(dev_dir / f"dev-850-0-img{side}.png", format="PNG")
    dev = tmp_path / "dev.json"
    write_jsonl(dev, [nlvr2_record("dev-850-0-0", "False"), nlvr2_record("dev-850-0-1", False)])
    examples, _ = load_nlvr2(dev, dev_dir)
    assert [(example.left_image, example.label) for example in examples] == [
        (str(dev_dir / "dev-850-0-img0.png"), 0)
    ] * 2


def test_load_nlvr2_counts_pairs_with_a_missing_image(tmp_path):
    for name in ("dev-1-0-img0.png", "dev-1-0-img1.png", "dev-2-0-img0.png"):
        save_image(tmp_path / "dev" / name, format="PNG")
    path = tmp_path / "dev.json"
    write_jsonl(path, [nlvr2_record("dev-1-0-0"), nlvr2_record("dev-2-0-0"), nlvr2_record("dev-3-1-1")])
    examples, report = load_nlvr2(path, tmp_path / "dev")
    assert [example.identifier for example in examples] == ["dev-1-0-0"]
    assert report.skipped == {"missing image": 2}
    assert "dev-2-0-img1.png" in report.examples["missing image"][0]
    assert_consistent(report)
    _, unchecked = load_nlvr2(path, tmp_path / "dev", check_images=False)
    assert (unchecked.loaded, unchecked.skipped) == (3, {})


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (nlvr2_record("dev-850-0"), "identifier"),
        (nlvr2_record("dev-850-0-x"), "identifier"),
        (nlvr2_record("dev-850-0-0", "yes"), "label"),
        (nlvr2_record("dev-850-0-0", 1), "label"),  # 1 == True, but not a published label
        (nlvr2_record("dev-850-0-0", "true"), "label"),
        ({**nlvr2_record("dev-850-0-0"), "sentence": None}, "sentence"),
        (nlvr2_record("train-850-0-0", directory=[1]), "directory"),
    ],
)
def test_load_nlvr2_bad_records_name_file_line_and_field(tmp_path, record, field):
    path = tmp_path / "dev.json"
    write_jsonl(path, [nlvr2_record("dev-1-0-0"), record])
    with pytest.raises(KnowledgeCLIPDataError) as error:
        load_nlvr2(path, tmp_path, check_images=False)
    assert_located(error, path, 2, field)


def test_load_nlvr2_refuses_a_directory_leaving_the_image_dir(tmp_path):
    path = tmp_path / "train.json"
    write_jsonl(path, [nlvr2_record("train-1-0-0", directory="../../elsewhere")])
    with pytest.raises(UnsafePathError) as error:
        load_nlvr2(path, tmp_path / "images", check_images=False)
    assert_located(error, path, 1, "directory")


# ------------------------------------------------------------------------------------------------ Karpathy retrieval
def karpathy_image(index, split, filename, filepath=None, captions=2):
    sentences = [
        {"tokens": ["a", "photo"], "raw": f" A photo {index}.{k} ", "imgid": index, "sentid": 10 * index + k}
        for k in range(captions)
    ]
    record = {"filename": filename, "imgid": index, "split": split, "sentences": sentences}
    record["sentids"] = [sentence["sentid"] for sentence in sentences]
    if filepath is not None:
        record |= {"filepath": filepath, "cocoid": index}
    return record


def write_coco_karpathy(root, missing=()):
    splits = ["train", "restval", "val", "test", "test", "train"]
    records = []
    for index, split in enumerate(splits):
        folder = "train2014" if split == "train" else "val2014"
        filename = f"COCO_{folder}_{index:012d}.jpg"
        records.append(karpathy_image(index, split, filename, folder, captions=2 + (index == 4)))
        if index not in missing:
            save_image(root / "coco" / folder / filename)
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": records, "dataset": "coco"}))
    return path


def test_load_karpathy_retrieval_coco_splits(tmp_path):
    path = write_coco_karpathy(tmp_path)
    test, report = load_karpathy_retrieval(path, tmp_path / "coco")
    assert test.images == [str(tmp_path / "coco" / "val2014" / f"COCO_val2014_{i:012d}.jpg") for i in (3, 4)]
    assert test.captions == ["A photo 3.0", "A photo 3.1", "A photo 4.0", "A photo 4.1", "A photo 4.2"]  # stripped
    assert test.caption_image == [0, 0, 1, 1, 1]
    assert test.image_captions() == [[0, 1], [2, 3, 4]]
    assert (report.records_read, report.loaded, report.counts) == (2, 2, {"captions loaded": 5})

    train, report = load_karpathy_retrieval(path, tmp_path / "coco", split="train")
    assert [image.rsplit("_", 1)[1] for image in train.images] == [
        "000000000000.jpg",
        "000000000001.jpg",
        "000000000005.jpg",
    ]
    assert train.images[1].endswith("val2014/COCO_val2014_000000000001.jpg")  # restval images are val2014 images
    train_only, _ = load_karpathy_retrieval(path, tmp_path / "coco", split="train", include_restval=False)
    assert len(train_only.images) == 2
    restval, _ = load_karpathy_retrieval(path, tmp_path / "coco", split="restval")
    assert len(restval.images) == 1
    with pytest.raises(ValueError, match="split must be one of"):
        load_karpathy_retrieval(path, tmp_path / "coco", split="dev")


def test_load_karpathy_retrieval_flickr30k_has_no_filepath(tmp_path):
    records = [karpathy_image(i, "test", f"{1000 + i}.jpg") for i in range(2)]
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps({"images": records, "dataset": "flickr30k"}))
    for i in range(2):
        save_image(tmp_path / "flickr30k-images" / f"{1000 + i}.jpg")
    split, report = load_karpathy_retrieval(path, tmp_path / "flickr30k-images")
    assert isinstance(split, RetrievalSplit)
    assert split.images == [str(tmp_path / "flickr30k-images" / f"{1000 + i}.jpg") for i in range(2)]
    assert split.caption_image == [0, 0, 1, 1]
    assert report.loaded == 2


def test_load_karpathy_retrieval_drops_and_counts_missing_images_with_their_captions(tmp_path):
    path = write_coco_karpathy(tmp_path, missing=(4,))
    test, report = load_karpathy_retrieval(path, tmp_path / "coco")
    assert len(test.images) == 1 and test.caption_image == [0, 0]
    assert report.skipped == {"missing image": 1}
    assert report.counts == {"captions loaded": 2, "captions dropped (missing image)": 3}
    assert report.summary() == (
        f"{path}: 2 records read, 1 loaded, skipped: missing image 1; captions loaded 2, "
        "captions dropped (missing image) 3"
    )
    assert_consistent(report)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sentences": [{"tokens": ["a"]}]}, "sentences"),
        ({"sentences": None}, "sentences"),
        ({"filename": 7}, "filename"),
        ({"split": None}, "split"),
    ],
)
def test_load_karpathy_retrieval_bad_records_name_file_record_and_field(tmp_path, change, field):
    records = [karpathy_image(0, "test", "0.jpg"), {**karpathy_image(1, "test", "1.jpg"), **change}]
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps({"images": records, "dataset": "flickr30k"}))
    with pytest.raises(KnowledgeCLIPDataError) as error:
        load_karpathy_retrieval(path, tmp_path, check_images=False)
    assert_located(error, path, 2, field)


def test_load_karpathy_retrieval_file_errors(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": [karpathy_image(0, "test", "../../x.jpg", "val2014")], "dataset": "coco"}))
    with pytest.raises(UnsafePathError) as error:
        load_karpathy_retrieval(path, tmp_path / "coco", check_images=False)
    assert_located(error, path, 1, "filename")
    path.write_text(json.dumps({"dataset": "coco"}))
    with pytest.raises(KnowledgeCLIPDataError, match="images: not a Karpathy split file"):
        load_karpathy_retrieval(path, tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset_f30k.json"):
        load_karpathy_retrieval(tmp_path / "dataset_f30k.json", tmp_path)
