"""Tests for knowledge_clip.graph: builder rules, CSR adjacency, neighbour sampling, splits, merge, save/load."""

import datasets
import numpy as np
import pyarrow as pa
import pytest

from knowledge_clip.errors import EmptyGraphError
from knowledge_clip.graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, LoadReport, ViewKind


def _text(text: str) -> EntityView:
    return EntityView(ViewKind.TEXT, text=text)


def _small_graph(name: str = "small", root=None) -> KnowledgeGraph:
    builder = KnowledgeGraphBuilder(name, root=root)
    cat = builder.add_entity("cat", [_text("cat")])
    animal = builder.add_entity("animal", text="animal")
    dog = builder.add_entity("dog", [_text("dog"), EntityView(ViewKind.IMAGE, path="images/dog.jpg")])
    tail = builder.add_entity("tail", [EntityView(ViewKind.REGION, path="images/dog.jpg", box=(1, 2, 30, 40))])
    builder.add_triplet(cat, "is a", animal)
    builder.add_triplet(dog, "is a", animal)
    builder.add_triplet(dog, "has a", tail)
    builder.add_triplet(cat, "has a", tail)
    graph = builder.build()
    assert graph.num_triplets == 4 and graph.report.skipped == {}
    return graph


def _random_graph(num_entities: int, num_edges: int, seed: int) -> KnowledgeGraph:
    rng = np.random.default_rng(seed)
    heads = rng.integers(0, num_entities, num_edges)
    tails = rng.integers(0, num_entities, num_edges)
    relation_ids = rng.integers(0, 3, num_edges)
    keys = [f"e{i}" for i in range(num_entities)]
    return KnowledgeGraph.from_arrays("random", keys, ["r0", "r1", "r2"], heads, relation_ids, tails)


# ------------------------------------------------------------------------------------------------ entity views
def test_entity_view_validation():
    assert EntityView(1, path="a/b.jpg").kind is ViewKind.IMAGE
    assert EntityView(ViewKind.IMAGE, path="a\\b.jpg").path == "a/b.jpg"
    for bad in (
        lambda: EntityView(ViewKind.TEXT),
        lambda: EntityView(ViewKind.TEXT, text=""),
        lambda: EntityView(ViewKind.IMAGE, path="/abs/x.jpg"),
        lambda: EntityView(ViewKind.IMAGE, path="../x.jpg"),
        lambda: EntityView(ViewKind.IMAGE, path="x.jpg", box=(0, 0, 1, 1)),
        lambda: EntityView(ViewKind.REGION, path="x.jpg"),
        lambda: EntityView(ViewKind.REGION, path="x.jpg", box=(5, 0, 1, 1)),
        lambda: EntityView(ViewKind.REGION, path="x.jpg", box=(0, 0, float("inf"), 1)),
    ):
        with pytest.raises(ValueError):
            bad()


# ----------------------------------------------------------------------------------------------------- builder
def test_add_entity_is_idempotent_and_deduplicates_views():
    builder = KnowledgeGraphBuilder("g")
    first = builder.add_entity("cat", text="cat")
    assert builder.add_entity("cat", [_text("cat"), _text("kitty")]) == first
    assert builder.add_entity("cat", text="kitty") == first
    other = builder.add_entity("dog", text="dog")
    builder.add_triplet(first, "is a", other)
    graph = builder.build()
    assert graph.entity_views(first) == [_text("cat"), _text("kitty")]
    assert builder.get_entity_id("cat") is None  # the builder handed everything to the graph
    with pytest.raises(RuntimeError):
        builder.add_entity("x")


def test_views_added_again_are_dropped_whichever_call_added_them():
    builder = KnowledgeGraphBuilder("g")
    region = EntityView(ViewKind.REGION, path="a.jpg", box=(0, 0, 4, 4))
    image = EntityView(ViewKind.IMAGE, path="a.jpg")
    (bulk,) = builder.add_text_entities(pa.array(["bulk"]), pa.array(["kept first"]))
    first = builder.add_entity("first", [region, image, region], text="text")
    builder.add_view(first, EntityView(ViewKind.REGION, path="a.jpg", box=(-0.0, 0, 4, 4)))  # equal to `region`
    builder.add_view(bulk, _text("kept first"))
    builder.add_view(bulk, image)
    assert builder.add_entity("first", [image, _text("text"), _text("later")]) == first
    builder.add_triplet(bulk, "r", first)
    graph = builder.build()
    assert graph.entity_views(bulk) == [_text("kept first"), image]
    assert graph.entity_views(first) == [_text("text"), region, image, _text("later")]


def test_duplicates_and_self_loops_are_rejected_and_counted():
    builder = KnowledgeGraphBuilder("g")
    a, b = builder.add_entity("a", text="a"), builder.add_entity("b", text="b")
    builder.add_triplet(a, "r", b)
    builder.add_triplet(a, "r", b)  # duplicate
    builder.add_triplet(a, "other", b)  # same ends, other relation: a different triplet
    builder.add_triplet(b, "r", b)  # self-loop
    builder.add_triplets([b, a, a], [0, 0, 1], [a, b, a])  # new, duplicate, self-loop
    assert builder.num_triplets == 7  # build drops the duplicates and self-loops
    report = LoadReport(source="input.txt", records_read=7)
    graph = builder.build(report)
    kept = list(zip(graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist()))
    assert kept == [(a, 0, b), (a, 1, b), (b, 0, a)]  # first occurrences, in the order they were added
    assert graph.report is report
    assert graph.num_triplets == 3 == report.triplets_loaded
    assert report.skipped == {"duplicate triplet": 2, "self-loop": 2}
    assert report.examples["self-loop"][0] == "b -[r]-> b"
    assert report.records_read == report.triplets_loaded + report.total_skipped


def test_bulk_triplets_dedup_within_and_across_calls_like_one_by_one():
    # The same random triplets through add_triplets in chunks, interleaved with add_triplet calls, and one by one.
    rng = np.random.default_rng(0)
    heads, relations, tails = rng.integers(0, 6, 400), rng.integers(0, 3, 400), rng.integers(0, 6, 400)
    bulk, single = KnowledgeGraphBuilder("bulk"), KnowledgeGraphBuilder("single")
    for builder in (bulk, single):
        builder.add_text_entities([f"e{i}" for i in range(6)], [f"entity {i}" for i in range(6)])
        for relation in "xyz":
            builder.add_relation(relation)
    for h, r, t in zip(heads.tolist(), relations.tolist(), tails.tolist()):
        single.add_triplet(h, r, t)
    for start in range(0, 400, 100):
        part = slice(start, start + 100)
        bulk.add_triplets(heads[part][:60], relations[part][:60], tails[part][:60])
        for h, r, t in zip(heads[part][60:], relations[part][60:], tails[part][60:]):
            bulk.add_triplet(h, r, t)
    expected = []  # the first occurrence of every triplet that is not a self-loop, in order
    for triplet in zip(heads.tolist(), relations.tolist(), tails.tolist()):
        if triplet[0] != triplet[2] and triplet not in expected:
            expected.append(triplet)
    first, second = bulk.build(), single.build()
    assert list(zip(first.heads.tolist(), first.relation_ids.tolist(), first.tails.tolist())) == expected
    for column in ("heads", "relation_ids", "tails"):
        np.testing.assert_array_equal(getattr(first, column), getattr(second, column))
    assert first.report.skipped == second.report.skipped and first.report.examples == second.report.examples
    assert sum(first.report.skipped.values()) > 0


def test_add_text_entities_in_bulk_matches_add_entity():
    builder = KnowledgeGraphBuilder("g")
    assert builder.add_entity("b", text="bee") == 0
    np.testing.assert_array_equal(builder.add_text_entities(["a", "c"], ["ay", "see"]), [1, 2])
    np.testing.assert_array_equal(builder.add_text_entities(["c", "b", "d"], ["sea", "bee", "dee"]), [2, 0, 3])
    builder.add_triplet(0, "r", 1)
    graph = builder.build()
    assert [graph.entity_key(i) for i in range(4)] == ["b", "a", "c", "d"]
    assert graph.entity_views(2) == [_text("see"), _text("sea")] and graph.entity_views(0) == [_text("bee")]
    with pytest.raises(ValueError):
        KnowledgeGraphBuilder("h").add_text_entities(["a"], ["x", "y"])


@pytest.mark.parametrize("as_arrow", [False, True], ids=["lists", "arrow"])
def test_add_text_entities_from_arrow_arrays_matches_lists(as_arrow):
    """Arrow arrays of new entities stay in Arrow until looked up; any other input (an existing or repeated key, an
    empty text) takes the same path as lists: the ids, errors, graph, report and examples are the same."""
    convert = (lambda values: pa.array(values, type=pa.string())) if as_arrow else list
    builder = KnowledgeGraphBuilder("g")
    ids = [builder.add_text_entities(convert(["a", "c"]), convert(["ay", "see"])).tolist()]
    ids.append(builder.add_text_entities(convert(["x", "y"]), convert(["ex", "why"])).tolist())
    builder.add_triplets([0, 1, 0], [builder.add_relation("r")] * 3, [1, 1, 1])  # a self-loop and a duplicate
    builder.add_triplet(2, "r", 3)
    assert builder.num_entities == 4
    ids.append(builder.add_text_entities(convert(["c", "b", "b"]), convert(["sea", "bee", "bea"])).tolist())
    with pytest.raises(ValueError, match="non-empty text"):
        builder.add_text_entities(convert(["e"]), convert([""]))
    assert builder.get_entity_id("y") == 3
    graph = builder.build()
    assert ids == [[0, 1], [2, 3], [1, 4, 4]]
    assert [graph.entity_key(i) for i in range(graph.num_entities)] == ["a", "c", "x", "y", "b", "e"]
    assert graph.entity_views(1) == [_text("see"), _text("sea")]
    assert graph.entity_views(4) == [_text("bee"), _text("bea")]
    assert graph.report.skipped == {"duplicate triplet": 1, "self-loop": 1}
    assert graph.report.examples["self-loop"] == ["c -[r]-> c"]


def test_view_path_check_is_cached_but_still_refuses_bad_paths():
    for _ in range(2):  # the second round is answered from the cache
        assert EntityView(ViewKind.REGION, path="a\\b.jpg", box=(0, 0, 1, 1)).path == "a/b.jpg"
        with pytest.raises(ValueError):
            EntityView(ViewKind.REGION, path="../b.jpg", box=(0, 0, 1, 1))


def test_builder_rejects_bad_ids():
    builder = KnowledgeGraphBuilder("g")
    a = builder.add_entity("a")
    with pytest.raises(IndexError):
        builder.add_triplet(a, "r", 5)
    with pytest.raises(IndexError):
        builder.add_triplet(a, 3, a)
    with pytest.raises(ValueError):
        KnowledgeGraphBuilder("with:colon")


def test_empty_graph_raises_naming_graph_and_source():
    builder = KnowledgeGraphBuilder("visual_genome")
    builder.add_entity("lonely")
    report = LoadReport(source="/data/vg/relationships.json", records_read=3)
    report.skip("missing image", "/data/vg/relationships.json:1: image_id", count=3)
    with pytest.raises(EmptyGraphError) as error:
        builder.build(report)
    message = str(error.value)
    assert "visual_genome" in message and "/data/vg/relationships.json" in message and "missing image" in message
    assert isinstance(error.value, ValueError)


# ------------------------------------------------------------------------------------------- entities, adjacency
def test_graph_accessors_and_stats():
    graph = _small_graph()
    assert (graph.num_entities, graph.num_relations, graph.num_triplets) == (4, 2, 4)
    assert graph.relations == ["is a", "has a"]
    assert graph.heads.dtype == np.int64 and not graph.heads.flags.writeable
    assert [graph.entity_key(i) for i in range(4)] == ["cat", "animal", "dog", "tail"]
    assert graph.entity_id("dog") == 2
    assert graph.entity_views(3) == [EntityView(ViewKind.REGION, path="images/dog.jpg", box=(1.0, 2.0, 30.0, 40.0))]
    assert graph.entity_source(0) == "small"
    with pytest.raises(IndexError):
        graph.entity_key(4)
    stats = graph.stats()
    assert stats["views_by_kind"] == {"text": 3, "image": 1, "region": 1}
    assert stats["entities_by_view_kind"] == {"text": 3, "image": 1, "region": 1}
    assert stats["triplets_per_relation"] == {"is a": 2, "has a": 2}
    assert stats["in_degree"]["max"] == 2 and stats["isolated_entities"] == 0


def test_in_and_out_edges_match_brute_force():
    graph = _random_graph(50, 400, seed=1)
    for entity in range(graph.num_entities):
        np.testing.assert_array_equal(np.sort(graph.in_edges(entity)), np.flatnonzero(graph.tails == entity))
        np.testing.assert_array_equal(np.sort(graph.out_edges(entity)), np.flatnonzero(graph.heads == entity))


# ------------------------------------------------------------------------------------------- neighbour sampling
def test_sample_in_neighbors_hop_structure_and_bounds():
    graph = _random_graph(200, 3000, seed=2)
    seeds = np.array([3, 7, 7, 11])
    k = 4
    sampled = graph.sample_in_neighbors(seeds, num_neighbors=k, num_hops=2, rng=np.random.default_rng(0))
    assert sampled.dtype == np.int64 and len(np.unique(sampled)) == len(sampled)
    # Hop 1: the in-edges sampled for the seeds, at most k each, and every seed with in-edges gets min(k, degree).
    hop1 = sampled[np.isin(graph.tails[sampled], np.unique(seeds))]
    for seed in np.unique(seeds):
        chosen = hop1[graph.tails[hop1] == seed]
        assert len(chosen) == min(k, len(graph.in_edges(seed)))
        assert set(chosen) <= set(graph.in_edges(seed).tolist())
    # Hop 2: only in-edges of the heads found in hop 1 (not expanded before), at most k per tail.
    hop2 = sampled[~np.isin(sampled, hop1)]
    new_heads = set(graph.heads[hop1].tolist()) - set(seeds.tolist())
    assert set(graph.tails[hop2].tolist()) <= new_heads
    _, per_tail = np.unique(graph.tails[hop2], return_counts=True)
    assert per_tail.max() <= k
    for head in new_heads:
        assert (graph.tails[hop2] == head).sum() == min(k, len(graph.in_edges(head)))


def test_sample_in_neighbors_is_deterministic_per_seed():
    graph = _random_graph(100, 5000, seed=3)
    seeds = np.arange(0, 100, 9)

    def sample(seed):
        return graph.sample_in_neighbors(seeds, 5, 2, np.random.default_rng(seed))

    np.testing.assert_array_equal(sample(42), sample(42))
    assert not np.array_equal(sample(42), sample(43))


def test_sample_in_neighbors_uniform_without_replacement():
    # One hub with 20 in-edges, k = 5: every in-edge must be drawn with probability 1/4.
    heads = np.arange(1, 21)
    graph = KnowledgeGraph.from_arrays(
        "hub", [f"e{i}" for i in range(21)], ["r"], heads, np.zeros(20, dtype=np.int64), np.zeros(20, dtype=np.int64)
    )
    rng = np.random.default_rng(0)
    counts = np.zeros(20)
    for _ in range(2000):
        sampled = graph.sample_in_neighbors([0], num_neighbors=5, num_hops=1, rng=rng)
        assert len(sampled) == 5 == len(set(sampled.tolist()))
        counts[sampled] += 1
    assert counts.min() > 400 and counts.max() < 600  # expected 500 each, sd about 19


def test_sample_in_neighbors_edge_cases():
    graph = _small_graph()
    rng = np.random.default_rng(0)
    assert graph.sample_in_neighbors([0], 3, 2, rng).size == 0  # "cat" has no in-edges
    assert graph.sample_in_neighbors([], 3, 2, rng).size == 0
    assert graph.sample_in_neighbors([1], 3, 0, rng).size == 0
    with pytest.raises(IndexError):
        graph.sample_in_neighbors([99], 3, 1, rng)
    with pytest.raises(ValueError):
        graph.sample_in_neighbors([1], 0, 1, rng)


# ------------------------------------------------------------------------------------------- splits, subgraphs
def test_split_is_deterministic_disjoint_and_complete():
    graph = _random_graph(100, 1000, seed=4)
    parts = graph.split(valid=0.1, test=0.2, seed=7)
    assert [len(parts[name]) for name in ("train", "valid", "test")] == [700, 100, 200]
    union = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(union), np.arange(1000))
    again = graph.split(valid=0.1, test=0.2, seed=7)
    for name in parts:
        np.testing.assert_array_equal(parts[name], again[name])
    assert not np.array_equal(parts["test"], graph.split(valid=0.1, test=0.2, seed=8)["test"])
    with pytest.raises(ValueError):
        graph.split(valid=0.6, test=0.6)


def test_subgraph_keeps_entities_and_vocabulary():
    graph = _small_graph()
    sub = graph.subgraph(np.array([2, 0]))
    assert sub.num_entities == graph.num_entities and sub.relations == graph.relations
    np.testing.assert_array_equal(sub.heads, graph.heads[[2, 0]])
    np.testing.assert_array_equal(sub.in_edges(1), [1])  # triplet 0 of the parent is triplet 1 here
    with pytest.raises(IndexError):
        graph.subgraph([4])


# ------------------------------------------------------------------------------------------------------- merge
def test_merge_namespaces_keys_and_remaps_relations(tmp_path):
    first = _small_graph("vg", root=tmp_path / "vg")
    builder = KnowledgeGraphBuilder("conceptnet")
    cat, pet = builder.add_entity("cat", text="cat"), builder.add_entity("pet", text="pet")
    builder.add_triplet(cat, "related to", pet)
    builder.add_triplet(pet, "is a", cat)
    second = builder.build()

    merged = KnowledgeGraph.merge([first, second], name="all")
    assert merged.num_entities == 6 and merged.num_triplets == 6
    assert merged.relations == ["is a", "has a", "related to"]
    assert merged.entity_key(0) == "vg:cat" and merged.entity_key(4) == "conceptnet:cat"
    assert merged.entity_source(0) == "vg" and merged.entity_source(5) == "conceptnet"
    # Every triplet keeps its meaning: same head key, relation text and tail key as in its source graph.
    for graph, offset, start in ((first, 0, 0), (second, 4, 4)):
        for index in range(graph.num_triplets):
            merged_index = start + index
            assert (
                merged.entity_key(merged.heads[merged_index]) == f"{graph.name}:{graph.entity_key(graph.heads[index])}"
            )
            assert merged.relations[merged.relation_ids[merged_index]] == graph.relations[graph.relation_ids[index]]
            assert merged.tails[merged_index] == graph.tails[index] + offset
    # Image paths are rebased on the common root.
    assert merged.root == str(tmp_path / "vg")
    assert merged.entity_views(2)[1].path == "images/dog.jpg"
    with pytest.raises(ValueError):
        KnowledgeGraph.merge([first, first])


def test_merge_rebases_paths_on_common_root(tmp_path):
    vg = _small_graph("vg", root=tmp_path / "vg")
    other = _small_graph("visualsem", root=tmp_path / "visualsem")
    merged = KnowledgeGraph.merge([vg, other])
    assert merged.root == str(tmp_path)
    assert merged.entity_views(2)[1].path == "vg/images/dog.jpg"
    assert merged.entity_views(6)[1].path == "visualsem/images/dog.jpg"
    assert merged.report.triplets_loaded == 8


# --------------------------------------------------------------------------------------------------- save, load
def test_save_and_load_round_trip_is_equal_and_memory_mapped(tmp_path):
    graph = _small_graph(root="data/root")
    graph.report.skip("bad json", "f.csv:3: json: invalid")
    graph.save_to_disk(tmp_path / "kg")
    loaded = KnowledgeGraph.load_from_disk(tmp_path / "kg")
    assert (loaded.name, loaded.root, loaded.relations) == (graph.name, graph.root, graph.relations)
    for name in ("heads", "relation_ids", "tails"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(graph, name))
    for entity in range(graph.num_entities):
        assert loaded.entity_key(entity) == graph.entity_key(entity)
        assert loaded.entity_views(entity) == graph.entity_views(entity)
        assert loaded.entity_source(entity) == graph.entity_source(entity)
    assert loaded.report == graph.report
    assert loaded.stats() == graph.stats()
    # The tables are plain `datasets` datasets, memory-mapped from their Arrow files.
    entities = datasets.load_from_disk(str(tmp_path / "kg" / "entities"))
    assert entities.cache_files and entities[2]["key"] == "dog"
    assert datasets.load_from_disk(str(tmp_path / "kg" / "triplets"))[0] == {"head": 0, "relation": 0, "tail": 1}
    # A merged graph round-trips too (sources, namespaced keys).
    merged = KnowledgeGraph.merge([graph, _small_graph("other")])
    merged.save_to_disk(tmp_path / "merged")
    loaded_merged = KnowledgeGraph.load_from_disk(tmp_path / "merged")
    assert loaded_merged.entity_source(5) == "other" and loaded_merged.entity_key(5) == "other:animal"


def test_load_from_disk_rejects_other_directories(tmp_path):
    with pytest.raises(FileNotFoundError):
        KnowledgeGraph.load_from_disk(tmp_path)


def test_load_report_str_and_dict():
    report = LoadReport(source="file.csv", records_read=10, triplets_loaded=7)
    for line in range(3):
        report.skip("language", f"file.csv:{line}: start")
    text = str(report)
    assert "file.csv" in text and "skipped: language" in text and "file.csv:2: start" in text
    assert LoadReport.from_dict(report.to_dict()) == report
    for line in range(10):
        report.skip("language", f"file.csv:{line}")
    assert report.skipped["language"] == 13 and len(report.examples["language"]) == 5
