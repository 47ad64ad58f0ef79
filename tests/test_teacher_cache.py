"""The KD teacher's embeddings: CLIP's own features (the teacher's last layer computed at the pooled token alone); and
its cache: a step with it equals a step without it, it is keyed on the tower input (not on the entity), bounded, and
bound to one teacher; and the processor's input hashes it is keyed on."""

import pytest
import torch
from tiny import solid_image, tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.processing_knowledge_clip import tower_input_hashes
from knowledge_clip.training import TeacherEmbeddingCache, teacher_embeddings

RED, BLUE, GREEN = solid_image((220, 30, 30)), solid_image((30, 30, 220)), solid_image((30, 200, 30))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    processor = tiny_processor(tokenizer)
    model = KnowledgeCLIPModel(tiny_config(tokenizer)).eval()  # no dropout: two steps compute alike
    teacher = KnowledgeCLIPModel(tiny_config(tokenizer)).to_clip().eval().requires_grad_(False)
    return model, teacher, processor


@torch.no_grad()
@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("legacy_eos", [False, True])
def test_teacher_embeddings_are_clips_features(setup, padding_side, legacy_eos, monkeypatch):
    _, teacher, processor = setup
    # A config written before transformers fixed `eos_token_id` (2) makes CLIP pool at the row's highest id.
    if legacy_eos:
        monkeypatch.setattr(teacher.text_model, "eos_token_id", 2)
    triplets = [
        (RED, "image of", "a red square on a green mat"),
        ("square", "is a", "shape"),
        ("a circle", "left of", BLUE),
    ]
    # CLIP's features of each text alone: right-padded, which its causal mask hides from the real tokens.
    reference = processor(triplets=triplets)
    monkeypatch.setattr(processor.tokenizer, "padding_side", padding_side)
    embeddings = teacher_embeddings(teacher, processor(triplets=triplets))
    texts = teacher.get_text_features(
        input_ids=reference["entity_input_ids"], attention_mask=reference["entity_attention_mask"]
    ).pooler_output
    images = teacher.get_image_features(pixel_values=reference["entity_pixel_values"]).pooler_output
    assert texts.shape[0] == 4 and images.shape[0] == 2
    torch.testing.assert_close(embeddings["teacher_text_embeds"], texts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embeddings["teacher_image_embeds"], images, rtol=1e-5, atol=1e-5)


def _loss_and_gradients(model, teacher, batch, cache):
    model.zero_grad(set_to_none=True)
    output = model(**batch, return_loss=True, **teacher_embeddings(teacher, batch, cache))
    output.loss.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return output, gradients


def test_a_step_with_the_cache_equals_a_step_without_it(setup):
    model, teacher, processor = setup
    first = processor(triplets=[(RED, "image of", "a red square"), ("square", "is a", "shape")])
    # The second batch shares two entities with the first (read from the cache), and brings new ones.
    second = processor(triplets=[("a red square", "caption of", RED), (BLUE, "left of", "a blue circle")])
    cache = TeacherEmbeddingCache()
    teacher_embeddings(teacher, first, cache)
    assert len(cache) == 4 and cache.hits == 0

    cached, cached_gradients = _loss_and_gradients(model, teacher, second, cache)
    assert cache.hits == 2 and cache.misses == 4 + 2 and len(cache) == 6
    fresh, fresh_gradients = _loss_and_gradients(model, teacher, second, None)
    assert cached.kd_loss > 0
    # Equal up to float rounding: a cached row was computed in another batch (the teacher's matrix products block
    # differently for another batch shape, ~3e-7 here), which moves token-embedding gradients of size ~20 by ~1e-5
    # of that at most, the literal reference's tolerance.
    for name in ("loss", "kd_loss", "e2e_loss"):
        torch.testing.assert_close(cached[name], fresh[name], rtol=1e-6, atol=1e-6, msg=name)
    assert cached_gradients.keys() == fresh_gradients.keys()
    for name, gradient in cached_gradients.items():
        torch.testing.assert_close(gradient, fresh_gradients[name], rtol=1e-5, atol=1e-5, msg=name)


@torch.no_grad()
def test_keyed_on_the_tower_input_not_on_the_entity(setup):
    _, teacher, processor = setup
    cache = TeacherEmbeddingCache()
    # Entity 7 shown as one image, then (another view of it) as another; entity 8 the same text both times.
    for image in (RED, BLUE, RED):
        batch = processor.encode_knowledge([image, "a square"], [(0, "image of", 1)], entity_ids=[7, 8])
        expected = teacher_embeddings(teacher, batch)
        cached = teacher_embeddings(teacher, batch, cache)
        for key in ("teacher_text_embeds", "teacher_image_embeds"):
            torch.testing.assert_close(cached[key], expected[key], rtol=1e-6, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (2 + 1, 2 + 1, 3)


@torch.no_grad()
def test_memory_is_bounded_and_evicted_rows_are_recomputed(setup):
    _, teacher, processor = setup
    cache = TeacherEmbeddingCache(max_entries=3)
    texts = ["a red square", "a blue circle", "a green triangle", "shape", "square", "circle"]
    for _ in range(2):
        for head, tail in zip(texts, texts[1:] + [GREEN]):
            batch = processor(triplets=[(head, "is a", tail)])
            expected = teacher_embeddings(teacher, batch)
            cached = teacher_embeddings(teacher, batch, cache)
            for key in ("teacher_text_embeds", "teacher_image_embeds"):
                torch.testing.assert_close(cached[key], expected[key], rtol=1e-6, atol=1e-6)
            assert len(cache) <= 3 and cache._values.shape[0] <= 3
    # Each batch's head was the previous batch's tail, so it was found; with 3 entries nothing older survives, so the
    # second round's first batch found none of the first round's first texts.
    assert cache.hits == 2 * (len(texts) - 1)

    # A batch of more entities than the cache holds still gets every embedding right.
    batch = processor(triplets=[(RED, "image of", "a red square"), (BLUE, "image of", "a blue circle")])
    cached = teacher_embeddings(teacher, batch, cache)
    torch.testing.assert_close(
        cached["teacher_image_embeds"], teacher_embeddings(teacher, batch)["teacher_image_embeds"]
    )
    assert len(cache) == 3


def test_one_teacher_per_cache_and_hashes_required(setup, tokenizer):
    _, teacher, processor = setup
    batch = processor(triplets=[("a red square", "is a", "shape")])
    cache = TeacherEmbeddingCache()
    teacher_embeddings(teacher, batch, cache)
    other = KnowledgeCLIPModel(tiny_config(tokenizer)).to_clip().eval()
    with pytest.raises(ValueError, match="serves one teacher"):
        teacher_embeddings(other, batch, cache)
    without_hashes = {key: value for key, value in batch.items() if key != "entity_input_hashes"}
    with pytest.raises(ValueError, match="entity_input_hashes"):
        teacher_embeddings(teacher, without_hashes, cache)
    with pytest.raises(ValueError, match="max_entries"):
        TeacherEmbeddingCache(max_entries=0)


def test_tower_input_hashes(setup):
    _, _, processor = setup
    texts = processor.tokenizer(["a red square", "shape", "a red square"], padding=True, return_tensors="pt")
    pixels = processor.image_processor([RED, BLUE, RED], return_tensors="pt")["pixel_values"]
    hashes = tower_input_hashes(texts["input_ids"], texts["attention_mask"], pixels).tolist()
    assert len(hashes) == 6 and all(0 <= value < 2**63 for value in hashes)
    # Equal inputs, equal hashes; different inputs (texts and images among themselves and with each other) differ.
    assert hashes[0] == hashes[2] and hashes[3] == hashes[5]
    assert len({hashes[0], hashes[1], hashes[3], hashes[4]}) == 4
    # Only the real tokens count: the same text padded to another width hashes alike.
    alone = processor.tokenizer(["a red square"], return_tensors="pt")
    assert tower_input_hashes(alone["input_ids"], alone["attention_mask"], None).tolist() == [hashes[0]]
    # One changed pixel is another input.
    changed = pixels[:1].clone()
    changed[0, 0, 0, 0] += 1e-3
    assert tower_input_hashes(None, None, changed).tolist() != [hashes[3]]
    # Every knowledge batch carries them, one per entity slot (texts, then images).
    batch = processor(triplets=[(RED, "image of", "a red square")])
    assert batch["entity_input_hashes"].tolist() == [hashes[0], hashes[3]]
