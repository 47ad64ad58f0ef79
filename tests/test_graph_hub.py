"""`KnowledgeGraph.push_to_hub` / `from_hub` with only the network edge (`HfApi`) replaced by a local fake."""

import json
import logging
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from graph_utils import FakeHub, assert_same_graph
from huggingface_hub import DatasetCard
from huggingface_hub.errors import OfflineModeIsEnabled
from PIL import Image

from knowledge_clip.errors import KnowledgeCLIPDataError, UnsafePathError
from knowledge_clip.graph import EntityView, KnowledgeGraph, KnowledgeGraphBuilder, LoadReport, ViewKind
from knowledge_clip.training import TrainingConfigurationError
from knowledge_clip.training.datasets import DatasetSpec, load_mixture, parse_dataset_spec

REPO_ID = "someone/toy-graph"
TOKEN = "hf_SECRETtokenThatMustNeverBeWritten0123"


def _image_graph(root: Path, name: str = "toy") -> KnowledgeGraph:
    """Texts, two images (one in a subfolder, shared by a region) and a load report with skips."""
    (root / "images" / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "images" / "dog.png")
    Image.new("RGB", (16, 16), (10, 200, 10)).save(root / "images" / "sub" / "cat.jpg", quality=90)
    report = LoadReport(source=str(root / "toy.json"), records_read=9)
    report.skip("bad json", "toy.json:3: json: invalid")
    builder = KnowledgeGraphBuilder(name, root=root)
    dog = builder.add_entity(
        "dog", [EntityView(ViewKind.TEXT, text="dog"), EntityView(ViewKind.IMAGE, path="images/dog.png")]
    )
    tail = builder.add_entity("tail", [EntityView(ViewKind.REGION, path="images/dog.png", box=(1.5, 2, 30, 25))])
    cat = builder.add_entity("cat", [EntityView(ViewKind.IMAGE, path="images/sub/cat.jpg")])
    animal = builder.add_entity("animal", text="animal ✓")  # non-ASCII survives
    for head, relation, tail_ in ((dog, "is a", animal), (cat, "is a", animal), (dog, "has a", tail)):
        builder.add_triplet(head, relation, tail_)
    builder.add_triplet(dog, "is a", animal)  # duplicate: counted in the report
    return builder.build(report)


@pytest.fixture
def hub(tmp_path):
    return FakeHub(tmp_path)


def test_round_trip_is_exact_images_included(tmp_path, hub):
    graph = _image_graph(tmp_path / "data")
    url = graph.push_to_hub(REPO_ID, licenses="cc-by-4.0", private=True, api=hub.api)
    assert url == f"https://huggingface.co/datasets/{REPO_ID}/commit/0123"
    hub.api.create_repo.assert_called_once_with(REPO_ID, repo_type="dataset", private=True, exist_ok=True)
    hub.api.create_branch.assert_not_called()
    assert hub.api.upload_folder.call_args.kwargs["commit_message"] == "Upload knowledge graph toy"

    loaded = KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    assert_same_graph(loaded, graph)
    assert Path(loaded.root).is_relative_to(hub.cache)  # written beside the download, not back into the data
    # The images are embedded: nothing of the local root travels, and the tables are plain Parquet configs.
    remote = hub.branch()
    assert str(tmp_path / "data") not in (remote / "knowledge_graph.json").read_text().replace(graph.report.source, "")
    assert json.loads((remote / "knowledge_graph.json").read_text())["root"] is None
    images = pq.read_table(remote / "data" / "images" / "train-00000-of-00001.parquet")
    assert images.column("path").to_pylist() == ["images/dog.png", "images/sub/cat.jpg"]
    # `datasets` reads each config as the Hub would, the card's `configs` naming the files: images decode.
    dataset = datasets.load_dataset(str(remote), "images", split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset[0]["path"] == "images/dog.png" and dataset[0]["image"].size == (40, 30)


def test_text_only_graph_round_trips_without_images_config(tmp_path, hub):
    builder = KnowledgeGraphBuilder("words")
    a, b = builder.add_entity("a", text="a"), builder.add_entity("b", text="b")
    builder.add_triplet(a, "next to", b)
    graph = builder.build()
    graph.push_to_hub(REPO_ID, licenses={"words": "cc-by-sa-4.0"}, api=hub.api)
    assert not (hub.branch() / "data" / "images").exists()
    loaded = KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    assert loaded.root is None
    assert_same_graph(loaded, graph)


def test_small_shards_and_a_merged_graph(tmp_path, hub):
    merged = KnowledgeGraph.merge([_image_graph(tmp_path / "a", "first"), _image_graph(tmp_path / "b", "second")])
    # One image is 100+ bytes: a 1-byte limit gives one image per shard, like max_shard_rows=1 for the tables.
    merged.push_to_hub(REPO_ID, licenses={"first": "cc-by-4.0", "second": "mit"}, max_shard_rows=2, api=hub.api)
    shards = {config: sorted(p.name for p in (hub.branch() / "data" / config).iterdir()) for config in
              ("triplets", "entities", "relations", "images")}  # fmt: skip
    assert shards["triplets"] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]  # 6 triplets, 2 a shard
    assert len(shards["entities"]) == 4 and len(shards["relations"]) == 1 and len(shards["images"]) == 2
    assert_same_graph(KnowledgeGraph.from_hub(REPO_ID, api=hub.api), merged)

    merged.push_to_hub(REPO_ID, licenses="mit", max_shard_bytes=1, api=hub.api)  # one image a shard
    assert len(list((hub.branch() / "data" / "images").iterdir())) == 4
    # A second upload replaces every data file: nothing is left of the first one's shards.
    assert [p.name for p in (hub.branch() / "data" / "triplets").iterdir()] == ["train-00000-of-00001.parquet"]
    assert_same_graph(KnowledgeGraph.from_hub(REPO_ID, api=hub.api), merged)


def test_revision_creates_the_branch_and_reads_it(tmp_path, hub):
    graph = _image_graph(tmp_path / "data")
    graph.push_to_hub(REPO_ID, licenses="cc-by-4.0", revision="v1", commit_message="first", api=hub.api)
    hub.api.create_branch.assert_called_once_with(REPO_ID, repo_type="dataset", branch="v1", exist_ok=True)
    upload = hub.api.upload_folder.call_args.kwargs
    assert (upload["revision"], upload["repo_type"], upload["commit_message"]) == ("v1", "dataset", "first")
    assert not (hub.branch() / "knowledge_graph.json").exists()  # main is untouched
    loaded = KnowledgeGraph.from_hub(REPO_ID, revision="v1", cache_dir=tmp_path / "elsewhere", api=hub.api)
    assert hub.api.snapshot_download.call_args.kwargs == {
        "repo_id": REPO_ID,
        "repo_type": "dataset",
        "revision": "v1",
        "cache_dir": tmp_path / "elsewhere",
    }
    assert_same_graph(loaded, graph)


def test_dataset_card_names_licenses_counts_configs_and_report(tmp_path, hub):
    merged = KnowledgeGraph.merge([_image_graph(tmp_path / "a", "first"), _image_graph(tmp_path / "b", "second")])
    merged.push_to_hub(REPO_ID, licenses={"first": "cc-by-4.0", "second": "cc-by-sa-4.0"}, api=hub.api)
    text = (hub.branch() / "README.md").read_text()
    data = DatasetCard(text).data
    assert data.license == ["cc-by-4.0", "cc-by-sa-4.0"]
    assert [config["config_name"] for config in data.configs] == ["triplets", "entities", "relations", "images"]
    assert data.configs[0]["data_files"] == [{"split": "train", "path": "data/triplets/train-*.parquet"}]
    assert data.knowledge_graph["triplets"] == 6 and data.knowledge_graph["images"] == 4
    assert data.knowledge_graph["entities_by_view_kind"] == {"text": 4, "image": 4, "region": 2}
    assert data.knowledge_graph["sources"] == {"first": 4, "second": 4}
    assert data.size_categories == "n<1K"
    yaml.safe_load(text.split("---")[1])  # plain YAML front matter
    assert "| first | cc-by-4.0 | 4 |" in text and "| second | cc-by-sa-4.0 | 4 |" in text
    assert "skipped: first: bad json" in text and "skipped: first: duplicate triplet" in text
    assert f'KnowledgeGraph.from_hub("{REPO_ID}")' in text


def test_licenses_must_cover_every_source(tmp_path, hub):
    graph = _image_graph(tmp_path / "data")
    with pytest.raises(ValueError, match=r"missing \['toy'\]"):
        graph.push_to_hub(REPO_ID, licenses={}, api=hub.api)
    with pytest.raises(ValueError, match=r"not a source of this graph: \['other'\]"):
        graph.push_to_hub(REPO_ID, licenses={"toy": "mit", "other": "mit"}, api=hub.api)
    with pytest.raises(ValueError, match="repo_id must be '<namespace>/<name>'"):
        graph.push_to_hub("no-namespace", licenses="mit", api=hub.api)
    hub.api.create_repo.assert_not_called()


def test_missing_image_file_is_named(tmp_path, hub):
    graph = _image_graph(tmp_path / "data")
    (tmp_path / "data" / "images" / "sub" / "cat.jpg").unlink()
    with pytest.raises(ValueError, match=r"sub/cat\.jpg.*cannot read"):
        graph.push_to_hub(REPO_ID, licenses="mit", api=hub.api)
    hub.api.upload_folder.assert_not_called()


def test_bad_repositories_give_errors_naming_file_and_field(tmp_path, hub):
    _image_graph(tmp_path / "data").push_to_hub(REPO_ID, licenses="mit", api=hub.api)
    metadata_file = hub.branch() / "knowledge_graph.json"
    metadata = json.loads(metadata_file.read_text())

    metadata_file.write_text(json.dumps({**metadata, "format_version": 99}))
    with pytest.raises(KnowledgeCLIPDataError, match=r"knowledge_graph\.json: format_version: unsupported .*99"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    metadata_file.write_text(json.dumps({key: value for key, value in metadata.items() if key != "num_triplets"}))
    with pytest.raises(KnowledgeCLIPDataError, match=r"knowledge_graph\.json: num_triplets: missing"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    metadata_file.write_text("{")
    with pytest.raises(KnowledgeCLIPDataError, match=r"knowledge_graph\.json: not valid JSON"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    metadata_file.write_text(json.dumps(metadata))

    triplets = hub.branch() / "data" / "triplets"
    shutil.copy(triplets / "train-00000-of-00001.parquet", triplets / "train-00001-of-00002.parquet")
    with pytest.raises(KnowledgeCLIPDataError, match=r"data/triplets: expected shards"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    (triplets / "train-00001-of-00002.parquet").unlink()

    images = hub.branch() / "data" / "images" / "train-00000-of-00001.parquet"
    table = pq.read_table(images)
    pq.write_table(table.set_column(0, "path", [["../escape.png", "images/sub/cat.jpg"]]), images)
    with pytest.raises(UnsafePathError, match=r"data/images: path: .*must be relative"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)
    assert not (hub.cache / "escape.png").exists()
    pq.write_table(table.slice(1), images)  # dog.png gone
    with pytest.raises(KnowledgeCLIPDataError, match=r"data/images: path: 1 image.*'images/dog\.png'"):
        KnowledgeGraph.from_hub(REPO_ID, api=hub.api)


def test_token_never_reaches_files_or_logs(tmp_path, monkeypatch, caplog, capsys):
    hub = FakeHub(tmp_path)
    uploaded = {}

    def record_upload(*, folder_path, **kwargs):  # the folder is deleted after the upload: read it now
        uploaded.update({p: p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()})
        return hub.upload_folder(folder_path=folder_path, **kwargs)

    hub.api.upload_folder.side_effect = record_upload
    made_with = []
    monkeypatch.setattr("huggingface_hub.HfApi", lambda **kwargs: made_with.append(kwargs) or hub.api)
    graph = _image_graph(tmp_path / "data")
    with caplog.at_level(logging.DEBUG):
        graph.push_to_hub(REPO_ID, licenses="mit", token=TOKEN)
        loaded = KnowledgeGraph.from_hub(REPO_ID, token=TOKEN)
    assert made_with == [{"token": TOKEN}, {"token": TOKEN}]  # the token goes to the client, and only there
    assert uploaded and all(TOKEN.encode() not in content for content in uploaded.values())
    for path in [*hub.remote.rglob("*"), *Path(loaded.root).rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert TOKEN not in caplog.text + captured.out + captured.err


# ------------------------------------------------------------------------------- --dataset hub:<namespace>/<name>
def test_hub_dataset_specs():
    assert parse_dataset_spec("hub:org/name") == DatasetSpec("hub", "org/name")
    assert parse_dataset_spec("hub:org/name@v1:0.5") == DatasetSpec("hub", "org/name", 0.5, "v1")
    assert parse_dataset_spec("hub:org/name:2") == DatasetSpec("hub", "org/name", 2.0)
    for bad in ("hub:name-only", "hub:a/b/c", "hub:/name@v1", "hub:org/"):
        with pytest.raises(TrainingConfigurationError, match=r"the hub id must be '<namespace>/<name>'"):
            parse_dataset_spec(bad)


def test_load_mixture_reads_hub_sources_with_from_hub(tmp_path, hub, monkeypatch):
    graph = _image_graph(tmp_path / "data")
    graph.push_to_hub(REPO_ID, licenses="mit", revision="v1", api=hub.api)
    monkeypatch.setattr("huggingface_hub.HfApi", lambda **kwargs: hub.api)
    mixture = load_mixture([parse_dataset_spec(f"hub:{REPO_ID}@v1:0.5")], validation_fraction=0.0, seed=0)
    assert hub.api.snapshot_download.call_args.kwargs["revision"] == "v1"
    assert mixture.weights == [0.5]
    assert_same_graph(mixture.graphs[0], graph)

    hub.api.snapshot_download.side_effect = OfflineModeIsEnabled("Cannot reach the Hub: offline mode is enabled.")
    with pytest.raises(
        TrainingConfigurationError, match=r"--dataset hub:someone/toy-graph@v2: OfflineModeIsEnabled: Cannot reach"
    ):
        load_mixture([parse_dataset_spec(f"hub:{REPO_ID}@v2")], validation_fraction=0.0, seed=0)
