"""The demo world's downstream tasks: read by the downstream loaders unchanged, true of their scenes, a knowledge split
that needs the world's ConceptNet graph and nothing else, held-out compositions, determinism."""

import collections
import hashlib
import json
import re

import pytest

from knowledge_clip.data.conceptnet import load_conceptnet
from knowledge_clip.data.demo_world import build_demo_world, spatial_predicates
from knowledge_clip.data.demo_world.scenes import COLOURS, SHAPES
from knowledge_clip.data.downstream import (
    SNLI_VE_LABELS,
    load_karpathy_retrieval,
    load_nlvr2,
    load_snli_ve,
    load_vqa,
)
from knowledge_clip.metrics.vqa_accuracy.vqa_accuracy import normalize_answer

VQA_SUBSETS = {"train": "train2014", "dev": "val2014", "test": "test2015"}
NLVR2_SPLITS = {"train": "train", "dev": "dev", "test": "test1"}
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_demo_world(tmp_path_factory.mktemp("world") / "demo", seed=3, size="tiny")


@pytest.fixture(scope="module")
def data(world):
    """Every split of every task through the loaders, with the ground truth and the manifest."""
    root = world.downstream
    loaded = {"vqa": {}, "snli_ve": {}, "nlvr2": {}}
    for split in SPLITS:
        subset = VQA_SUBSETS[split]
        loaded["vqa"][split] = load_vqa(
            root / "vqa" / f"v2_OpenEnded_mscoco_{subset}_questions.json",
            root / "vqa" / f"v2_mscoco_{subset}_annotations.json",
            image_dir=root / "coco",
        )
        loaded["snli_ve"][split] = load_snli_ve(root / "snli_ve" / f"snli_ve_{split}.jsonl", root / "flickr30k_images")
        name = NLVR2_SPLITS[split]
        loaded["nlvr2"][split] = load_nlvr2(root / "nlvr2" / f"{name}.json", root / "nlvr2" / "images" / name)
    ground_truth = json.loads((root / "scenes.json").read_text())
    manifest = json.loads((root / "splits.json").read_text())
    return loaded, ground_truth, manifest


def _facts(world) -> dict[tuple[str, str], set[str]]:
    """(start, relation) -> ends, from the world's ConceptNet graph as the package loads it."""
    graph = load_conceptnet(world.conceptnet)
    facts: dict[tuple[str, str], set[str]] = {}
    for h, r, t in zip(graph.heads, graph.relation_ids, graph.tails):
        start, end = graph.entity_views(h)[0].text, graph.entity_views(t)[0].text
        facts.setdefault((start, graph.relations[r]), set()).add(end)
    return facts


def _objects_by_image(scenes, split):
    return {scene["image_id"]: scene["objects"] for scene in scenes[split]}


def _names(objects):
    return {f"{o['colour']} {o['shape']}" for o in objects}


def _knowledge_holds(phrase: str, objects, facts) -> bool | None:
    """Whether a knowledge phrase is true of the objects, by the graph's facts alone; None if not a knowledge phrase."""
    if match := re.fullmatch(r"a shape the same colour as the (.+)", phrase):
        (colour,) = facts[(match[1], "has property")]
        return colour in {o["colour"] for o in objects}
    if match := re.fullmatch(r"a shape (?:with|that is) (.+)", phrase):
        shapes = {start for (start, relation), ends in facts.items() if match[1] in ends and relation != "related to"}
        assert shapes, phrase
        return bool(shapes & {o["shape"] for o in objects})
    return None


def _statement_holds(text: str, objects, facts) -> bool | None:
    """Truth of a scene statement ("there is a red circle", "the red circle is left of the blue star", ...)."""
    names = _names(objects)
    by_name = {f"{o['colour']} {o['shape']}": o for o in objects}
    if match := re.fullmatch(r"there is (no )?(.+)", text):
        negated, phrase = bool(match[1]), match[2]
        holds = _knowledge_holds(phrase, objects, facts)
        if holds is None:
            holds = phrase.removeprefix("a ").removeprefix("an ") in names
        return holds != negated
    if match := re.fullmatch(r"there (?:is|are) (\d) shapes?", text):
        return int(match[1]) == len(objects)
    if match := re.fullmatch(
        r"the (\w+ \w+) is (left of|right of|above|below|bigger than|smaller than) the (\w+ \w+)", text
    ):
        return match[2] in spatial_predicates(by_name[match[1]]["box"], by_name[match[3]]["box"])
    return None


def _vqa_answer(question: str, objects, facts) -> str:
    """The answer to a question of the world's templates, computed from the scene and the graph."""
    if match := re.fullmatch(r"what colour is the (\w+)\?", question):
        (colour,) = [o["colour"] for o in objects if o["shape"] == match[1]]
        return colour
    if match := re.fullmatch(r"what shape is the (\w+) object\?", question):
        (shape,) = [o["shape"] for o in objects if o["colour"] == match[1]]
        return shape
    if question == "how many shapes are there?":
        return str(len(objects))
    if match := re.fullmatch(r"is the (\w+ \w+) small or large\?", question):
        (size,) = [o["size"] for o in objects if f"{o['colour']} {o['shape']}" == match[1]]
        return size
    if match := re.fullmatch(r"is there (.+)\?", question):
        statement = f"there is {match[1]}"
    elif match := re.fullmatch(r"is the (\w+ \w+) (.+)\?", question):
        statement = f"the {match[1]} is {match[2]}"
    else:
        raise AssertionError(f"unknown template: {question}")
    holds = _statement_holds(statement, objects, facts)
    assert holds is not None, question
    return "yes" if holds else "no"


def _nlvr2_holds(sentence: str, left, right) -> bool:
    """Truth of a two-image statement of the world's NLVR2 templates."""
    shapes = [{o["shape"] for o in objects} for objects in (left, right)]
    colours = [{o["colour"] for o in objects} for objects in (left, right)]
    if sentence == "the left image has more shapes than the right image":
        return len(left) > len(right)
    if sentence == "the right image has more shapes than the left image":
        return len(right) > len(left)
    if sentence == "both images contain the same number of shapes":
        return len(left) == len(right)
    if match := re.fullmatch(r"both images contain a (\w+)", sentence):
        return match[1] in shapes[0] and match[1] in shapes[1]
    if match := re.fullmatch(r"exactly one image contains a (\w+)", sentence):
        return (match[1] in shapes[0]) != (match[1] in shapes[1])
    if match := re.fullmatch(r"there is a (\w+) shape in each image", sentence):
        return match[1] in colours[0] and match[1] in colours[1]
    if match := re.fullmatch(r"there is a (\w+ \w+) in the (left|right) image", sentence):
        return match[1] in _names(left if match[2] == "left" else right)
    raise AssertionError(f"unknown template: {sentence}")


def test_loaders_read_every_record_without_a_skip(world, data):
    loaded, _, _ = data
    counts = world.manifest()["counts"]
    for split in SPLITS:
        for task, key in (("vqa", "questions"), ("snli_ve", "pairs"), ("nlvr2", "statements")):
            examples, report = loaded[task][split]
            assert report.skipped == {} and report.records_read == report.loaded == len(examples)
            assert len(examples) == counts[f"{task}_{split}_{key}"] > 0
    retrieval_file = world.downstream / "retrieval" / "dataset_flickr30k.json"
    totals = 0
    for split in ("train", "val", "test"):
        retrieval, report = load_karpathy_retrieval(retrieval_file, world.downstream / "flickr30k_images", split=split)
        assert report.skipped == {} and len(retrieval.captions) == 5 * len(retrieval.images) > 0
        totals += len(retrieval.images)
    assert totals == counts["retrieval_images"]


def test_vqa_answers_are_true_of_the_scenes(world, data):
    loaded, ground_truth, _ = data
    scenes = ground_truth["scenes"]
    facts = _facts(world)
    for split in SPLITS:
        objects_of = _objects_by_image(scenes, split)
        examples, _ = loaded["vqa"][split]
        for example in examples:
            answer = _vqa_answer(example.question, objects_of[example.image_id], facts)
            assert example.multiple_choice_answer == answer, example.question
            assert {normalize_answer(a) for a in example.answers} == {answer}, example.answers
            assert len(example.answers) == 10


def test_entailment_and_nlvr2_labels_are_true_of_the_scenes(world, data):
    loaded, ground_truth, _ = data
    scenes, pairs = ground_truth["scenes"], ground_truth["nlvr2_pairs"]
    facts = _facts(world)
    flickr_ids = {}
    for split in SPLITS:
        for scene in scenes[split]:
            flickr_ids[f"{4_000_000_000 + scene['image_id']}.jpg"] = scene["objects"]
    for split in SPLITS:
        examples, _ = loaded["snli_ve"][split]
        labels = {SNLI_VE_LABELS[example.label] for example in examples}
        assert labels == set(SNLI_VE_LABELS)
        for example in examples:
            objects = flickr_ids[example.image.rsplit("/", 1)[-1]]
            holds = _statement_holds(example.text, objects, facts)
            expected = "neutral" if holds is None else ("entailment" if holds else "contradiction")
            assert SNLI_VE_LABELS[example.label] == expected, example.text
    # NLVR2: the two images of each statement are scenes of the split; the label is the statement's truth.
    for split in SPLITS:
        objects_of = _objects_by_image(scenes, split)
        examples, _ = loaded["nlvr2"][split]
        assert sum(e.label for e in examples) * 2 == len(examples)  # one true and one false statement per pair
        for example in examples:
            stem = example.identifier.rsplit("-", 1)[0]
            assert example.left_image.endswith(f"{stem}-img0.png") and example.right_image.endswith(f"{stem}-img1.png")
            left, right = (objects_of[image_id] for image_id in pairs[stem])
            assert example.label == _nlvr2_holds(example.sentence, left, right), example.sentence


def test_nlvr2_sentence_forms_say_nothing_about_the_label(data):
    """Each image pair has a true and a false statement of one template: no template (the sentence with its colour,
    shape, name and side words removed) predicts the label, so a model reading only the text is at 0.5."""
    loaded, _, _ = data
    words = "|".join((*COLOURS, *SHAPES, "left", "right"))
    for split in SPLITS:
        examples, _ = loaded["nlvr2"][split]
        labels_of = collections.defaultdict(collections.Counter)
        for first, second in zip(examples[::2], examples[1::2]):
            forms = [re.sub(rf"\b({words})\b", "_", e.sentence) for e in (first, second)]
            assert forms[0] == forms[1] and {first.label, second.label} == {0, 1}, (first.sentence, second.sentence)
            labels_of[forms[0]].update((first.label, second.label))
        assert len(labels_of) >= 3 and all(counts[0] == counts[1] for counts in labels_of.values())


def test_knowledge_split_needs_the_graph_and_nothing_else(world, data):
    loaded, _, manifest = data
    facts = _facts(world)
    test_facts = manifest["knowledge_facts"]["test"]
    train_facts = manifest["knowledge_facts"]["train"]
    # Every fact the split asks about is an assertion of the world's ConceptNet graph.
    for kind in ("colour", "shape"):
        for subject, end in test_facts[kind] + train_facts[kind]:
            assert any(end in ends for (start, _), ends in facts.items() if start == subject), (subject, end)
    # Test facts share no subject with the train facts.
    for kind in ("colour", "shape"):
        assert not {s for s, _ in test_facts[kind]} & {s for s, _ in train_facts[kind]}
    test_phrases = [s for s, _ in test_facts["colour"]] + [f for _, f in test_facts["shape"]]
    # Absent from every caption (pre-training and downstream) and from every downstream training text.
    captions = [
        c["caption"]
        for name in ("coco_captions", "coco_captions_val")
        for c in json.loads(getattr(world, name).read_text())["annotations"]
    ]
    retrieval = json.loads((world.downstream / "retrieval" / "dataset_flickr30k.json").read_text())
    captions += [s["raw"] for image in retrieval["images"] for s in image["sentences"]]
    train_texts = [e.question for e in loaded["vqa"]["train"][0]] + [e.text for e in loaded["snli_ve"]["train"][0]]
    train_texts += [e.sentence for e in loaded["nlvr2"]["train"][0]]
    for phrase in test_phrases:
        pattern = re.compile(rf"\b{re.escape(phrase)}\b")
        assert not any(pattern.search(text.lower()) for text in captions + train_texts), phrase
    # The knowledge ids of dev and test name only test facts, are yes/no (entail/contradict) and balanced: the answer
    # prior is 50%.
    for split in ("dev", "test"):
        ids = set(manifest["vqa"][split]["knowledge"])
        questions = [e for e in loaded["vqa"][split][0] if e.question_id in ids]
        assert questions and {q.multiple_choice_answer for q in questions} == {"yes", "no"}
        assert sum(q.multiple_choice_answer == "yes" for q in questions) * 2 == len(questions)
        assert all(any(p in q.question for p in test_phrases) for q in questions)
        pairs = [e for e in loaded["snli_ve"][split][0] if e.pair_id in set(manifest["snli_ve"][split]["knowledge"])]
        assert pairs and {SNLI_VE_LABELS[p.label] for p in pairs} == {"entailment", "contradiction"}
        assert sum(SNLI_VE_LABELS[p.label] == "entailment" for p in pairs) * 2 == len(pairs)
        assert all(any(p in e.text for p in test_phrases) for e in pairs)
        # Stated positively: a negated knowledge hypothesis would ask for the negation as well as the fact.
        assert not any(e.text.startswith("there is no ") for e in pairs)


def test_held_out_compositions_never_reach_training(data):
    loaded, ground_truth, manifest = data
    scenes = ground_truth["scenes"]
    held_out = set(manifest["held_out_compositions"])
    assert held_out
    assert not any(_names(scene["objects"]) & held_out for scene in scenes["train"])
    assert all(_names(scene["objects"]) & held_out for split in ("dev", "test") for scene in scenes[split])
    train_texts = [e.question for e in loaded["vqa"]["train"][0]] + [e.text for e in loaded["snli_ve"]["train"][0]]
    train_texts += [e.sentence for e in loaded["nlvr2"]["train"][0]]
    assert not any(name in text for name in held_out for text in train_texts)
    for task in ("vqa", "snli_ve"):
        assert manifest[task]["test"]["held_out_composition"]


def _digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_deterministic_per_seed(world, tmp_path):
    again = build_demo_world(tmp_path / "again", seed=3, size="tiny")
    other = build_demo_world(tmp_path / "other", seed=4, size="tiny")
    assert _digest(again.downstream) == _digest(world.downstream)
    assert _digest(other.downstream) != _digest(world.downstream)
