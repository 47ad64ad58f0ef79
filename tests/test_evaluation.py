"""Evaluation: chunked retrieval, zero-shot classification, filtered link prediction and relation prediction against
literal implementations, and the "unavailable" answer of a plain CLIP for the knowledge metrics."""

import numpy as np
import pytest
import torch
from tiny import RELATIONS, solid_image, tiny_config

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.evaluation import (
    class_embeddings,
    encode_images,
    encode_texts,
    evaluate_knowledge_graphs,
    graph_entity,
    image_text_retrieval,
    link_prediction,
    relation_prediction,
    reranked_retrieval_ranks,
    retrieval_ranks,
    zero_shot_classification,
)
from knowledge_clip.graph import EntityView, KnowledgeGraphBuilder, ViewKind
from knowledge_clip.reasoning import KnowledgeReasoner


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return KnowledgeCLIPModel(tiny_config(tokenizer, fusion_encoder_config={"drop_path_rate": 0.0})).eval()


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """Texts and two image entities; (square, is a, ?) and (?, has part, tail) have several true answers."""
    root = tmp_path_factory.mktemp("graph")
    for name, colour in (("red.png", (220, 30, 30)), ("blue.png", (30, 30, 220))):
        solid_image(colour).save(root / name)
    builder = KnowledgeGraphBuilder("tiny", root=root)
    texts = ["square", "circle", "triangle", "shape", "colour", "red", "blue", "animal", "dog", "cat", "tail"]
    ids = {text: builder.add_entity(text, [EntityView(ViewKind.TEXT, text=text)]) for text in texts}
    ids["red.png"] = builder.add_entity("red.png", [EntityView(ViewKind.IMAGE, path="red.png")])
    ids["blue.png"] = builder.add_entity(
        "blue.png", [EntityView(ViewKind.IMAGE, path="blue.png"), EntityView(ViewKind.TEXT, text="blue")]
    )
    triplets = [
        ("square", "is a", "shape"),
        ("circle", "is a", "shape"),
        ("triangle", "is a", "shape"),
        ("red", "is a", "colour"),
        ("blue", "is a", "colour"),
        ("dog", "is a", "animal"),
        ("cat", "is a", "animal"),
        ("dog", "has part", "tail"),
        ("cat", "has part", "tail"),
        ("red.png", "left of", "blue.png"),
        ("red.png", "image of", "red"),
        ("blue.png", "image of", "blue"),
        ("square", "is a", "colour"),
        ("square", "left of", "circle"),
    ]
    for head, relation, tail in triplets:
        builder.add_triplet(ids[head], relation, ids[tail])
    return builder.build()


# ---------------------------------------------------------------------------------------------------------- retrieval
def _literal_retrieval_ranks(image_embeds, text_embeds, text_to_image):
    scores = (text_embeds @ image_embeds.T).tolist()
    text_ranks = []
    for text, image in enumerate(text_to_image):
        others = [s for i, s in enumerate(scores[text]) if i != image]
        text_ranks.append(1 + sum(s >= scores[text][image] for s in others))
    image_ranks = []
    for image in range(len(image_embeds)):
        own = [t for t, i in enumerate(text_to_image) if i == image]
        best = max(scores[t][image] for t in own)
        image_ranks.append(1 + sum(scores[t][image] >= best for t in range(len(text_embeds)) if t not in own))
    return image_ranks, text_ranks


def test_chunked_retrieval_equals_unchunked_and_a_literal_loop():
    generator = torch.Generator().manual_seed(0)
    image_embeds = torch.nn.functional.normalize(torch.randn(23, 8, generator=generator), dim=-1)
    text_to_image = torch.cat([torch.arange(23), torch.randint(0, 23, (40,), generator=generator)])
    text_embeds = torch.nn.functional.normalize(
        image_embeds[text_to_image] + torch.randn(63, 8, generator=generator), dim=-1
    )
    whole = retrieval_ranks(image_embeds, text_embeds, text_to_image, chunk_size=10**6)
    for chunk_size in (1, 5, 7):
        chunked = retrieval_ranks(image_embeds, text_embeds, text_to_image, chunk_size=chunk_size)
        assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
    literal = _literal_retrieval_ranks(image_embeds, text_embeds, text_to_image.tolist())
    assert whole[0].tolist() == literal[0] and whole[1].tolist() == literal[1]


def _literal_reranked_ranks(first, second, text_to_image, top_k):
    """Per query, the gallery in first-stage order with its top_k re-sorted by first + second; the rank is 1 + the
    irrelevant items before the first relevant one, or the first-stage rank when no relevant item is in the top_k."""

    def rank(first_row, second_row, relevant):
        order = sorted(range(len(first_row)), key=lambda g: -first_row[g])
        head = sorted(order[:top_k], key=lambda g: -(first_row[g] + second_row[g]))
        reordered = head + order[top_k:] if any(relevant(g) for g in order[:top_k]) else order
        first_relevant = next(position for position, g in enumerate(reordered) if relevant(g))
        return 1 + first_relevant  # every item before the first relevant one is irrelevant

    text_ranks = [rank(first[t], second[t], lambda g, t=t: g == text_to_image[t]) for t in range(len(first))]
    first_t, second_t = list(zip(*first)), list(zip(*second))
    image_ranks = [rank(first_t[i], second_t[i], lambda g, i=i: text_to_image[g] == i) for i in range(len(first_t))]
    return image_ranks, text_ranks


def test_reranked_retrieval_equals_a_literal_reordering():
    generator = torch.Generator().manual_seed(1)
    normal = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=generator), dim=-1)  # noqa: E731
    image_embeds, rerank_images = normal(17, 8), normal(17, 6)
    text_to_image = torch.cat([torch.arange(17), torch.randint(0, 17, (25,), generator=generator)])
    text_embeds = torch.nn.functional.normalize(image_embeds[text_to_image] + normal(42, 8), dim=-1)
    rerank_texts = normal(42, 6)
    first = (text_embeds @ image_embeds.T).tolist()
    second = (rerank_texts @ rerank_images.T).tolist()
    plain = retrieval_ranks(image_embeds, text_embeds, text_to_image)
    for top_k in (1, 3, 8, 100):
        for chunk_size in (1, 7, 1024):
            ranks = reranked_retrieval_ranks(
                image_embeds, text_embeds, text_to_image, rerank_images, rerank_texts, top_k, chunk_size
            )
            literal = _literal_reranked_ranks(first, second, text_to_image.tolist(), top_k)
            assert ranks[0].tolist() == literal[0] and ranks[1].tolist() == literal[1], (top_k, chunk_size)
        if top_k == 1:  # re-ordering one candidate changes nothing
            assert torch.equal(ranks[0], plain[0]) and torch.equal(ranks[1], plain[1])
    # A second stage that knows the answer puts every relevant item of the top-k first.
    oracle = reranked_retrieval_ranks(
        image_embeds, text_embeds, text_to_image, torch.eye(17), 10 * torch.eye(17)[text_to_image], 8
    )
    assert (oracle[1][plain[1] <= 8] == 1).all() and torch.equal(oracle[1][plain[1] > 8], plain[1][plain[1] > 8])
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        reranked_retrieval_ranks(image_embeds, text_embeds, text_to_image, rerank_images, rerank_texts, 0)


def test_retrieval_ranks_count_ties_against_the_model():
    image_embeds = torch.ones(3, 2) / 2**0.5
    ranks = retrieval_ranks(image_embeds, image_embeds.clone(), torch.arange(3))
    assert ranks[0].tolist() == [3, 3, 3] and ranks[1].tolist() == [3, 3, 3]


def test_retrieval_refuses_an_image_without_caption():
    with pytest.raises(ValueError, match="Image 1 has no text"):
        retrieval_ranks(torch.eye(3), torch.eye(3)[:2], torch.tensor([0, 2]))


def test_image_text_retrieval_is_the_same_for_the_exported_clip(model, processor):
    images = [solid_image(c) for c in ((220, 30, 30), (30, 30, 220), (30, 200, 30))]
    texts = ["a red square", "red", "a blue circle", "a green shape"]
    knowledge = image_text_retrieval(model, processor, images, texts, [0, 0, 1, 2], recall_at=[1, 2])
    clip = image_text_retrieval(model.to_clip(), processor, images, texts, [0, 0, 1, 2], recall_at=[1, 2])
    assert knowledge == clip
    assert knowledge["image_to_text"]["num_queries"] == 3 and knowledge["text_to_image"]["num_queries"] == 4


# ---------------------------------------------------------------------------------------------------------- zero-shot
def test_zero_shot_classification_equals_a_literal_argmax(model, processor):
    class_names = ["red square", "blue circle", "green triangle", "shape"]
    templates = ["a photo of a {}.", "{}"]
    images = [solid_image(c) for c in ((220, 30, 30), (30, 30, 220), (30, 200, 30), (200, 200, 30))]
    labels = [0, 1, 2, "shape"]
    result = zero_shot_classification(model, processor, images, labels, class_names, templates, top_k=[1, 2])

    prompts = [[t.format(name) for t in templates] for name in class_names]
    weights = torch.stack(
        [torch.nn.functional.normalize(encode_texts(model, processor, p).mean(0), dim=0) for p in prompts]
    )
    assert torch.allclose(weights, class_embeddings(model, processor, class_names, templates), atol=1e-6)
    scores = encode_images(model, processor, images) @ weights.T
    true = [0, 1, 2, 3]
    ranks = [int((scores[i] >= scores[i, true[i]]).sum()) for i in range(4)]
    assert result["top1_accuracy"] == sum(r <= 1 for r in ranks) / 4
    assert result["top2_accuracy"] == sum(r <= 2 for r in ranks) / 4
    assert result["num_classes"] == 4 and result["num_templates"] == 2
    with pytest.raises(ValueError, match="not one of the 4 class names"):
        zero_shot_classification(model, processor, images[:1], ["dog"], class_names, templates)


# ---------------------------------------------------------------------------------------------------- link prediction
def _literal_link_ranks(model, processor, graph, test, known, direction):
    """Scores every corrupted triplet with `score_triplets`, an independent path through the model, and counts."""
    reasoner = KnowledgeReasoner(model, processor, batch_size=5)
    entities = [graph_entity(graph, e) for e in range(graph.num_entities)]
    known_set = set(zip(graph.heads[known].tolist(), graph.relation_ids[known].tolist(), graph.tails[known].tolist()))
    ranks = []
    for index in test:
        head, relation, tail = int(graph.heads[index]), int(graph.relation_ids[index]), int(graph.tails[index])
        text = graph.relations[relation]
        corrupted = []
        for candidate in range(graph.num_entities):
            triplet = (head, relation, candidate) if direction == "tail" else (candidate, relation, tail)
            if candidate != (tail if direction == "tail" else head) and triplet not in known_set:
                corrupted.append((entities[triplet[0]], text, entities[triplet[2]]))
        true_score, *scores = reasoner.score_triplets([(entities[head], text, entities[tail]), *corrupted])
        ranks.append(1 + sum(score >= true_score for score in scores))
    return ranks


def test_filtered_link_prediction_equals_a_literal_loop(model, processor, graph):
    test = np.array([0, 3, 7, 9, 10, 13])
    literal_ranks = {}
    for name, known in (("all", np.arange(graph.num_triplets)), ("held-out only", test)):
        result = link_prediction(
            model,
            processor,
            graph,
            test,
            known_triplet_indices=None if name == "all" else known,
            hits_at=[1, 3],
            batch_size=4,
            chunk_size=3,
        )
        assert result["available"] and result["num_candidates"] == graph.num_entities
        assert result["both"]["num_queries"] == 2 * len(test)
        for direction in ("tail", "head"):
            ranks = np.array(_literal_link_ranks(model, processor, graph, test, known, direction))
            assert result[direction]["mean_rank"] == pytest.approx(ranks.mean()), (name, direction)
            assert result[direction]["mrr"] == pytest.approx(np.mean(1 / ranks)), (name, direction)
            assert result[direction]["hits@3"] == pytest.approx(np.mean(ranks <= 3)), (name, direction)
            literal_ranks[name, direction] = ranks.tolist()
    # The graph and model make filtering matter, so a link prediction that filtered wrongly could not pass.
    assert any(literal_ranks["all", d] != literal_ranks["held-out only", d] for d in ("tail", "head"))


def test_link_prediction_candidates_and_directions(model, processor, graph):
    test = np.array([0, 1])
    subset = [0, 1, 2, 3, 4]
    result = link_prediction(model, processor, graph, test, candidate_entities=subset, directions=["tail"])
    assert result["num_candidates"] == 5 and "head" not in result and "both" not in result
    with pytest.raises(ValueError, match="not candidates"):
        link_prediction(model, processor, graph, np.array([7]), candidate_entities=subset)
    with pytest.raises(ValueError, match="directions"):
        link_prediction(model, processor, graph, test, directions=["sideways"])


def test_relation_prediction_equals_the_reasoner_and_counts_unknown_relations(model, processor, graph):
    test = np.arange(graph.num_triplets)
    result = relation_prediction(model, processor, graph, test, top_k=[1, 2])
    reasoner = KnowledgeReasoner(model, processor)
    in_vocab = [i for i in test if graph.relations[graph.relation_ids[i]] in RELATIONS]
    correct = 0
    for index in in_vocab:
        head, tail = graph_entity(graph, graph.heads[index]), graph_entity(graph, graph.tails[index])
        correct += (
            reasoner.rank_relations(head, tail, top_k=1)[0]["relation"] == graph.relations[graph.relation_ids[index]]
        )
    assert result["accuracy"] == pytest.approx(correct / len(in_vocab))
    assert result["num_examples"] == len(in_vocab) and result["num_classes"] == len(RELATIONS)
    assert result["skipped"] == {}
    unknown = KnowledgeGraphBuilder("unknown")
    a = unknown.add_entity("a", [EntityView(ViewKind.TEXT, text="square")])
    b = unknown.add_entity("b", [EntityView(ViewKind.TEXT, text="shape")])
    unknown.add_triplet(a, "is a", b)
    unknown.add_triplet(b, "made of", a)
    mixed = relation_prediction(model, processor, unknown.build(), np.array([0, 1]))
    assert mixed["num_examples"] == 1 and mixed["skipped"] == {"relation not in the model's relation_vocab": 1}


def test_graph_entity_view_choice(graph):
    blue = graph.entity_id("blue.png")
    assert not isinstance(graph_entity(graph, blue, "first"), str)
    assert graph_entity(graph, blue, "text") == "blue"
    assert graph_entity(graph, graph.entity_id("red"), "image") == "red"  # no image view: the first view
    with pytest.raises(ValueError, match="entity_view"):
        graph_entity(graph, blue, "audio")


def test_plain_clip_gets_unavailable_knowledge_metrics(model, processor, graph):
    clip = model.to_clip()
    for result in (
        link_prediction(clip, processor, graph, [0]),
        relation_prediction(clip, processor, graph, [0]),
        *evaluate_knowledge_graphs(clip, processor, {"tiny": graph}),
    ):
        assert result["available"] is False and "CLIPModel has no fusion encoder" in result["reason"]
