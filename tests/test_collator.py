"""Tests of KnowledgeTripletDataset and KnowledgeCLIPCollator on small graphs with text, image and region views."""

import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import RELATIONS, tiny_config

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.data.collator import KnowledgeCLIPCollator, KnowledgeTripletDataset
from knowledge_clip.errors import KnowledgeCLIPDataError
from knowledge_clip.graph import EntityView, KnowledgeGraphBuilder, ViewKind

RED, BLUE = (220, 20, 20), (20, 20, 220)


def text(value):
    return EntityView(ViewKind.TEXT, text=value)


def image(path):
    return EntityView(ViewKind.IMAGE, path=path)


def region(path, box):
    return EntityView(ViewKind.REGION, path=path, box=box)


def build_shapes_graph(root):
    """Shapes with text, image and region views; `broken` has only a corrupt image, `flaky` a text and a lost one."""
    (root / "images").mkdir()
    Image.new("RGB", (40, 30), RED).save(root / "images" / "red.png")
    Image.new("RGB", (30, 40), BLUE).save(root / "images" / "blue.png")
    scene = Image.new("RGB", (64, 32), RED)
    scene.paste(BLUE, (32, 0, 64, 32))
    scene.save(root / "images" / "scene.png")
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")

    builder = KnowledgeGraphBuilder("shapes", root=root)
    red = builder.add_entity("red", [text("red circle"), image("images/red.png")])
    blue = builder.add_entity("blue", [text("blue square"), image("images/blue.png")])
    shape = builder.add_entity("shape", [text("shape")])
    left = builder.add_entity("left", [region("images/scene.png", (0, 0, 32, 32))])
    right = builder.add_entity("right", [region("images/scene.png", (32, 0, 64, 32))])
    broken = builder.add_entity("broken", [image("images/corrupt.png")])
    flaky = builder.add_entity("flaky", [text("yellow triangle"), image("images/lost.png")])
    for head, relation, tail in [
        (red, "is a", shape),  # 0
        (blue, "is a", shape),  # 1
        (left, "left of", right),  # 2
        (red, "has part", left),  # 3
        (blue, "has part", right),  # 4
        (left, "image of", red),  # 5
        (flaky, "is a", shape),  # 6
        (broken, "is a", shape),  # 7
        (right, "image of", blue),  # 8
        (shape, "caption of", red),  # 9
    ]:
        builder.add_triplet(head, relation, tail)
    graph = builder.build()
    assert graph.num_triplets == 10  # none dropped: the numbers above are triplet indices
    return graph


def build_animals_graph():
    builder = KnowledgeGraphBuilder("animals")
    entities = {name: builder.add_entity(name, [text(name)]) for name in ("dog", "cat", "animal", "tail")}
    for head, relation, tail in [
        ("dog", "is a", "animal"),
        ("cat", "is a", "animal"),
        ("tail", "has part", "dog"),
        ("tail", "has part", "cat"),
        ("animal", "has part", "tail"),
    ]:
        builder.add_triplet(entities[head], relation, entities[tail])
    return builder.build()


@pytest.fixture
def graphs(tmp_path):
    return [build_shapes_graph(tmp_path), build_animals_graph()]


class RecordingProcessor:
    """Wraps a processor and keeps the arguments of each `encode_knowledge` call (the entities as shown)."""

    def __init__(self, processor):
        self.processor = processor
        self.relation_vocab = processor.relation_vocab
        self.calls = []

    def encode_knowledge(self, entities, triplets, graph_edges=None, entity_ids=None):
        self.calls.append((entities, triplets, graph_edges, entity_ids))
        return self.processor.encode_knowledge(entities, triplets, graph_edges, entity_ids)


def global_triplets(graphs):
    """Every triplet of the graphs as (global head id, relation text, global tail id)."""
    rows, offset = set(), 0
    for graph in graphs:
        for head, relation, tail in zip(graph.heads, graph.relation_ids, graph.tails):
            rows.add((offset + int(head), graph.relations[relation], offset + int(tail)))
        offset += graph.num_entities
    return rows


def decode(batch, rows):
    """(global head id, relation text, global tail id) of each (head slot, relation row, tail slot) of `rows`."""
    ids, labels = batch["entity_ids"].tolist(), batch["relation_labels"].tolist()
    return [(ids[h], RELATIONS[labels[r]], ids[t]) for h, r, t in rows.tolist()]


def test_batch_fields_shapes_and_content(graphs, processor):
    collator = KnowledgeCLIPCollator(graphs, processor, num_neighbors=2, num_hops=2, seed=3)
    references = [(0, 0), (0, 2), (1, 0), (0, 4), (1, 3)]
    batch = collator(references)

    num_texts = batch["entity_input_ids"].shape[0] if "entity_input_ids" in batch else 0
    num_images = batch["entity_pixel_values"].shape[0] if "entity_pixel_values" in batch else 0
    assert num_images > 0  # the region entities have no other view
    assert batch["entity_pixel_values"].shape[1:] == (3, 32, 32)
    assert batch["entity_attention_mask"].shape == batch["entity_input_ids"].shape
    assert batch["entity_ids"].shape == (num_texts + num_images,)
    assert batch["triplets"].shape == (len(references), 3)
    assert batch["relation_input_ids"].shape[0] == batch["relation_labels"].shape[0]
    assert batch["graph_edges"].ndim == 2 and batch["graph_edges"].shape[1] == 3

    # Triplets come back in order, with their real entities (global ids: graph 1 is offset by graph 0's size).
    offsets = [0, graphs[0].num_entities]
    expected = [
        (
            offsets[g] + int(graphs[g].heads[t]),
            graphs[g].relations[graphs[g].relation_ids[t]],
            offsets[g] + int(graphs[g].tails[t]),
        )
        for g, t in references
    ]
    assert decode(batch, batch["triplets"]) == expected


def test_views_text_image_and_region(graphs, processor):
    recorder = RecordingProcessor(processor)
    collator = KnowledgeCLIPCollator(graphs[0], recorder, sample_graph_edges=False)
    collator([(0, 2)])  # left -[left of]-> right: two REGION views of one scene
    entities, triplets, graph_edges, entity_ids = recorder.calls[-1]
    assert graph_edges is None
    ((head, _, tail),) = triplets
    left, right = entities[head], entities[tail]
    assert left.size == right.size == (32, 32)
    assert left.getpixel((5, 5)) == RED and right.getpixel((5, 5)) == BLUE

    # Over many batches, an entity with a text and an image view is shown as each of them.
    shown_as = set()
    for seed in range(30):
        KnowledgeCLIPCollator(graphs[0], recorder, seed=seed, sample_graph_edges=False)([(0, 0)])
        entities, triplets, _, _ = recorder.calls[-1]
        red = entities[triplets[0][0]]
        shown_as.add(red if isinstance(red, str) else ("image", red.size, red.getpixel((0, 0))))
    assert shown_as == {"red circle", ("image", (40, 30), RED)}


def test_each_entity_one_slot_and_one_view(graphs, processor):
    recorder = RecordingProcessor(processor)
    # `red` is a head three times (0, 3, 9 as tail), `shape` a tail three times, and (0, 0) is repeated.
    references = [(0, 0), (0, 0), (0, 1), (0, 3), (0, 9), (0, 6)]
    for seed in range(10):
        batch = KnowledgeCLIPCollator(graphs, recorder, seed=seed)(references)
        ids = batch["entity_ids"].tolist()
        assert len(ids) == len(set(ids))
        entities, triplets, graph_edges, entity_ids = recorder.calls[-1]
        assert len(entity_ids) == len(set(entity_ids)) == len(entities)
        rows = decode(batch, torch.cat([batch["triplets"], batch["graph_edges"]]))
        assert set(ids) == {end for head, _, tail in rows for end in (head, tail)}
        # Both occurrences of (0, 0) point at the same slots.
        assert batch["triplets"][0].tolist() == batch["triplets"][1].tolist()


def test_graph_edges_are_sampled_in_edges(graphs, processor):
    all_triplets = global_triplets(graphs)
    references = [(0, 0), (0, 2), (1, 0), (1, 2)]
    for num_neighbors, num_hops in [(1, 1), (2, 2), (10, 3)]:
        collator = KnowledgeCLIPCollator(graphs, processor, num_neighbors=num_neighbors, num_hops=num_hops)
        batch = collator(references)
        tails = {tail for _, _, tail in decode(batch, batch["triplets"])}
        edges = decode(batch, batch["graph_edges"])
        assert edges and set(edges) <= all_triplets
        assert len(set(edges)) == len(edges)
        if num_hops == 1:
            # One hop, k = 1: one in-edge of each batch tail (every tail has one), unless its head failed to load.
            edge_tails = [tail for _, _, tail in edges]
            assert set(edge_tails) <= tails and len(set(edge_tails)) == len(edge_tails)
            assert len(edges) + collator.skipped["graph edge"] == len(tails)
        else:
            # Every edge leads into a batch tail or into the head of another sampled edge (a later hop).
            assert all(tail in tails or tail in {head for head, _, _ in edges} for _, _, tail in edges)
    # With k large enough and enough hops, the sample is the whole in-neighbourhood of the tails.
    in_edges_of_animal = {row for row in all_triplets if row[2] == graphs[0].num_entities + 2}
    assert in_edges_of_animal <= set(edges)


def test_reproducible_from_seed_and_references(graphs, processor):
    references = [(0, 0), (0, 1), (0, 3), (0, 5), (0, 6), (1, 1), (0, 8)]

    def collate(seed, warm_up=()):
        collator = KnowledgeCLIPCollator(graphs, processor, seed=seed)
        for other in warm_up:  # batches produced before must not change the next one (exact resume)
            collator(other)
        return collator(references)

    differs_from_seed_0 = []
    for seed in range(5):
        first = collate(seed)
        again = collate(seed, warm_up=[[(0, 1)], [(1, 4), (0, 9)]])
        assert first.keys() == again.keys()
        for key in first:
            assert torch.equal(first[key], again[key]), key
        if seed == 0:
            reference = first
        else:
            differs_from_seed_0.append(
                first.keys() != reference.keys() or any(not torch.equal(first[k], reference[k]) for k in first)
            )
    assert any(differs_from_seed_0)


def test_dataset_draws_are_deterministic_and_epoch_dependent(graphs):
    dataset = KnowledgeTripletDataset(graphs, seed=5)
    assert len(dataset) == graphs[0].num_triplets + graphs[1].num_triplets
    epoch_0 = dataset.__getitems__(range(len(dataset)))
    assert [dataset[i] for i in range(len(dataset))] == epoch_0
    assert KnowledgeTripletDataset(graphs, seed=5).__getitems__(range(len(dataset))) == epoch_0
    assert all(0 <= t < graphs[g].num_triplets for g, t in epoch_0)
    dataset.set_epoch(1)
    assert dataset.__getitems__(range(len(dataset))) != epoch_0
    dataset.set_epoch(0)
    assert dataset.__getitems__(range(len(dataset))) == epoch_0
    assert KnowledgeTripletDataset(graphs, seed=6).__getitems__(range(len(dataset))) != epoch_0
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_dataset_mixture_weights_and_split(graphs):
    num_samples = 20_000
    dataset = KnowledgeTripletDataset(graphs, weights=[0.8, 0.2], num_samples=num_samples, seed=1)
    draws = np.array(dataset.__getitems__(range(num_samples)))
    # Standard deviation of the fraction is sqrt(0.16 / 20000) = 0.003: a 0.015 bound is 5 sigma.
    assert abs((draws[:, 0] == 0).mean() - 0.8) < 0.015
    # Uniform within a graph: each of the 10 shapes triplets gets about 1600 draws (sd 38).
    counts = np.bincount(draws[draws[:, 0] == 0, 1], minlength=graphs[0].num_triplets)
    assert np.all(np.abs(counts - counts.sum() / graphs[0].num_triplets) < 200)

    # Default weights follow the triplet counts; a split restricts the draws to its triplets.
    train = np.array([0, 2, 4])
    dataset = KnowledgeTripletDataset(graphs, triplet_indices=[train, None], num_samples=num_samples)
    np.testing.assert_allclose(dataset.weights, [3 / 8, 5 / 8])
    draws = np.array(dataset.__getitems__(range(num_samples)))
    assert set(draws[draws[:, 0] == 0, 1].tolist()) == {0, 2, 4}
    assert set(draws[draws[:, 0] == 1, 1].tolist()) == set(range(graphs[1].num_triplets))
    assert abs((draws[:, 0] == 0).mean() - 3 / 8) < 0.02

    # A zero weight removes a graph; a graph with a weight must have triplets to draw.
    dataset = KnowledgeTripletDataset(graphs, weights=[0, 1], num_samples=200)
    assert {g for g, _ in dataset.__getitems__(range(200))} == {1}
    with pytest.raises(ValueError, match="no triplet"):
        KnowledgeTripletDataset(graphs, triplet_indices=[np.array([], dtype=np.int64), None], weights=[1, 1])
    with pytest.raises(IndexError):
        KnowledgeTripletDataset(graphs, triplet_indices=[np.array([99]), None])


def test_bad_images_fall_back_and_are_counted(graphs, processor, caplog):
    recorder = RecordingProcessor(processor)
    collator = KnowledgeCLIPCollator(graphs[0], recorder, sample_graph_edges=False, warn_every=3)
    with caplog.at_level(logging.WARNING, logger="knowledge_clip.data.collator"):
        for seed in range(8):
            collator.seed = seed
            batch = collator([(0, 6), (0, 7), (0, 0)])  # flaky (text + lost image), broken (corrupt only)
            assert batch["triplets"].shape == (2, 3)
            entities, triplets, _, _ = recorder.calls[-1]
            assert entities[triplets[0][0]] == "yellow triangle"  # never dropped: falls back to its text
    assert collator.skipped["triplet"] == 8  # (0, 7) in each batch
    # The corrupt image fails in every batch; the lost one whenever it is tried first (at random, seen here).
    failures = collator.skipped["image view"]
    assert 9 <= failures < 16
    # Logged on the first failure and every third one after it.
    assert len(caplog.records) == len([n for n in range(1, failures + 1) if n == 1 or n % 3 == 0])
    assert "corrupt.png" in caplog.text and "lost.png" in caplog.text

    with pytest.raises(KnowledgeCLIPDataError, match="all 2 triplets of the batch were dropped"):
        collator([(0, 7), (0, 7)])


def test_relations_must_be_in_the_processor_vocabulary(graphs, processor):
    builder = KnowledgeGraphBuilder("odd")
    builder.add_triplet(builder.add_entity("a", [text("a")]), "unknown relation", builder.add_entity("b", [text("b")]))
    with pytest.raises(ValueError, match="unknown relation"):
        KnowledgeCLIPCollator([graphs[1], builder.build()], processor)


def test_dataloader_workers(graphs, processor):
    dataset = KnowledgeTripletDataset(graphs, num_samples=12, seed=2)
    collator = KnowledgeCLIPCollator(graphs, processor, seed=2)
    restored_dataset, restored_collator = pickle.loads(pickle.dumps((dataset, collator)))
    assert restored_dataset.__getitems__(range(12)) == dataset.__getitems__(range(12))

    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collator)
    batches = list(loader)
    assert len(batches) == 3
    for index, batch in enumerate(batches):
        expected = restored_collator(dataset.__getitems__(range(4 * index, 4 * index + 4)))
        assert batch.keys() == expected.keys()
        for key in batch:
            assert torch.equal(batch[key], expected[key]), key


def test_collated_batch_trains_the_tiny_model(graphs, tokenizer, processor):
    torch.manual_seed(0)
    model = KnowledgeCLIPModel(tiny_config(tokenizer))
    collator = KnowledgeCLIPCollator(graphs, processor, num_neighbors=2, num_hops=2)
    batch = collator(KnowledgeTripletDataset(graphs, num_samples=8).__getitems__(range(8)))
    output = model(**batch, return_loss=True)
    for name in ("loss", "e2e_loss", "e2r_loss", "g2e_loss"):
        value = getattr(output, name)
        assert value is not None and torch.isfinite(value), name
    output.loss.backward()
    assert model.graph_head.layers[0].weight.grad is not None
