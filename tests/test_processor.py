"""KnowledgeCLIPProcessor: CLIP-compatible calls, knowledge batches, deduplication, image modes, bad input."""

import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import IMAGE_SIZE, solid_image


def test_clip_call_is_clip_processor(processor):
    image = solid_image((10, 200, 10))
    ours = processor(text=["a green square"], images=image, return_tensors="pt")
    clip = processor.to_clip_processor()(text=["a green square"], images=image, return_tensors="pt")
    assert ours.keys() == clip.keys()
    for key in ours:
        assert torch.equal(ours[key], clip[key])


def test_knowledge_batch_deduplicates_and_indexes(processor):
    red = solid_image((200, 10, 10))
    same_red = solid_image((200, 10, 10))  # equal pixels, another object: one entity
    batch = processor(
        triplets=[
            (red, "image of", "a red square"),
            ("a red square", "caption of", same_red),
            ("square", "is a", "shape"),
        ],
        graph_edges=[("square", "is a", "shape")],
    )
    assert batch["entity_input_ids"].shape[0] == 3  # "a red square", "square", "shape"
    assert batch["entity_pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch["entity_ids"].shape == (4,) and len(set(batch["entity_ids"].tolist())) == 4
    assert batch["relation_input_ids"].shape[0] == 3
    relation_texts = processor.tokenizer.batch_decode(batch["relation_input_ids"], skip_special_tokens=True)
    assert [processor.relation_vocab[label] for label in batch["relation_labels"]] == [
        t.strip() for t in relation_texts
    ]
    image_slot = 3
    assert batch["triplets"].tolist()[0][0] == image_slot and batch["triplets"].tolist()[1][2] == image_slot
    assert batch["triplets"][2].tolist() == batch["graph_edges"][0].tolist()


def test_entity_ids_are_stable_across_processes(processor):
    first = processor(triplets=[("square", "is a", "shape")])["entity_ids"]
    second = processor(triplets=[("square", "is a", "shape")])["entity_ids"]
    assert torch.equal(first, second)


def test_encode_knowledge_dedups_by_given_ids(processor):
    batch = processor.encode_knowledge(
        ["square", "shape", "square again"], [(0, "is a", 1), (2, "is a", 1)], entity_ids=[7, 8, 7]
    )
    assert batch["entity_ids"].tolist() == [7, 8]
    assert batch["triplets"].tolist() == [[0, 0, 1], [0, 0, 1]]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "LA", "I;16", "I", "F", "1"])
def test_any_image_mode(processor, mode):
    image = solid_image((120, 60, 200), mode="RGB")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
    batch = processor(triplets=[(image, "image of", "a purple square")])
    pixels = batch["entity_pixel_values"]
    assert pixels.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(pixels).all()


def test_sixteen_bit_image_is_scaled_not_clipped(processor):
    gray = Image.fromarray(np.full((40, 40), 128, dtype=np.uint8), mode="L")
    sixteen = Image.fromarray(np.full((40, 40), 128 * 257, dtype=np.uint16))
    assert sixteen.mode == "I;16"
    a = processor(triplets=[(gray, "image of", "gray")])["entity_pixel_values"]
    b = processor(triplets=[(sixteen, "image of", "gray")])["entity_pixel_values"]
    assert torch.allclose(a, b)


@pytest.mark.parametrize(
    "triplets, message",
    [
        (
            [("square", "is on top of", "shape")],
            "triplets[0] relation 'is on top of' is not in the relation vocabulary",
        ),
        ([("", "is a", "shape")], "triplets[0] head is an empty text entity"),
        ([("square", "is a", "   ")], "triplets[0] tail is an empty text entity"),
        ([("square", "", "shape")], "triplets[0] relation must be a non-empty string"),
        ([("square", "is a", None)], "triplets[0] tail must be a str or a PIL.Image.Image, got NoneType"),
        ([(3, "is a", "shape")], "triplets[0] head must be a str or a PIL.Image.Image, got int"),
        ([("square", "is a")], "triplets[0] must be a (head, relation, tail) triple"),
        ([], "A knowledge batch needs at least one triplet"),
    ],
)
def test_bad_triplets_name_the_offending_item(processor, triplets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        processor(triplets=triplets)


def test_bad_graph_edge_names_the_edge(processor):
    with pytest.raises(ValueError, match=r"graph_edges\[1\] relation 'likes'"):
        processor(triplets=[("square", "is a", "shape")], graph_edges=[("a", "is a", "b"), ("a", "likes", "b")])


def test_bad_indices_and_mixed_inputs(processor):
    with pytest.raises(ValueError, match=r"triplets\[0\] tail 5 is not an index into the 2 entities"):
        processor.encode_knowledge(["square", "shape"], [(0, "is a", 5)])
    with pytest.raises(ValueError, match="not both"):
        processor(text=["a"], triplets=[("square", "is a", "shape")])
    with pytest.raises(ValueError, match="entities\\[1\\] is an empty image"):
        processor.encode_knowledge(["square", Image.new("RGB", (0, 0))], [(0, "is a", 1)])


def test_processor_round_trip_keeps_relation_vocab(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    reloaded = type(processor).from_pretrained(tmp_path)
    assert reloaded.relation_vocab == processor.relation_vocab
    batch = reloaded(triplets=[("square", "is a", "shape")])
    assert torch.equal(
        batch["entity_input_ids"], processor(triplets=[("square", "is a", "shape")])["entity_input_ids"]
    )


def test_from_pretrained_on_a_clip_processor(processor, tmp_path):
    processor.to_clip_processor().save_pretrained(tmp_path)
    loaded = type(processor).from_pretrained(tmp_path, relation_vocab=["is a"])
    assert type(loaded) is type(processor) and loaded.relation_vocab == ["is a"]
    assert loaded(triplets=[("square", "is a", "shape")])["triplets"].tolist() == [[0, 0, 1]]


# ------------------------------------------------------------------------------------------------------------ VQA
def test_answer_vocabulary_counts_normalised_answers(processor):
    answers = ["Yes", "yes.", "no", "two", "2", "a dog", "dog", "red", "yes"]
    # "two" and "2", "a dog" and "dog" are one answer each once normalised as the official evaluator does.
    assert processor.build_answer_vocabulary(answers) == ["yes", "2", "dog", "no", "red"]
    assert processor.build_answer_vocabulary(answers, size=2) == ["yes", "2"]
    with pytest.raises(ValueError, match="size must be positive"):
        processor.build_answer_vocabulary(answers, size=0)


def test_answer_vocabulary_equals_the_loaders(processor):
    from knowledge_clip.data.downstream import VQAExample, build_answer_vocabulary

    answers = ["blue", "Blue", "two", "yes", "no", "yes", None]
    examples = [
        VQAExample(question_id=i, image_id=1, image="x.jpg", question="q?", answers=[], multiple_choice_answer=answer)
        for i, answer in enumerate(answers)
    ]
    assert processor.build_answer_vocabulary(a for a in answers if a is not None) == build_answer_vocabulary(examples)


def test_answer_targets_are_the_official_accuracy_of_each_answer(processor):
    vocab = ["yes", "no", "2", "red"]
    answers = [
        ["yes"] * 3 + ["no"] * 7,  # 3 humans: 0.9; 7: 1.0
        ["two", "2", "2", "red", "yes", "yes", "yes", "yes", "no", "no"],  # "two" normalises to "2": 3 humans
        ["blue"] * 10,  # outside the vocabulary: no target
    ]
    targets = processor.answer_targets(answers, vocab)
    assert targets.shape == (3, 4) and targets.dtype == torch.float32
    assert targets[0].tolist() == pytest.approx([0.9, 1.0, 0.0, 0.0])
    assert targets[1].tolist() == pytest.approx([1.0, 0.6, 0.9, 0.3])
    assert targets[2].tolist() == [0.0] * 4
    with pytest.raises(ValueError, match=r"answers\[0\] must be the list"):
        processor.answer_targets(["yes"], vocab)


def test_answer_methods_name_the_package_they_need(processor, monkeypatch):
    # As in a Hub repository's custom code loaded without the package (importing a None module raises ImportError).
    monkeypatch.setitem(sys.modules, "knowledge_clip.data.downstream", None)
    with pytest.raises(ImportError, match=r"answer_targets needs the knowledge_clip package"):
        processor.answer_targets([["yes"] * 10], ["yes"])
