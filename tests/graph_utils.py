"""Test helpers for knowledge graphs: a local stand-in for the Hub client, and exact graph comparison."""

import fnmatch
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
from huggingface_hub import HfApi

from knowledge_clip.data.images import open_image
from knowledge_clip.graph import KnowledgeGraph, ViewKind


class FakeHub:
    """An `HfApi` stand-in (autospec, so calls must match the real signatures) backed by local folders, one per
    branch: `upload_folder` applies `delete_patterns` and copies the folder in, `snapshot_download` copies a branch
    out to a fresh "cache" folder, as the real client does."""

    def __init__(self, tmp_path: Path):
        self.remote = tmp_path / "remote"
        self.cache = tmp_path / "cache"
        self.downloads = 0
        self.api = mock.create_autospec(HfApi, instance=True)
        self.api.upload_folder.side_effect = self.upload_folder
        self.api.create_branch.side_effect = self.create_branch
        self.api.snapshot_download.side_effect = self.snapshot_download

    def branch(self, revision=None) -> Path:
        return self.remote / (revision or "main")

    def create_branch(self, repo_id, *, branch, repo_type=None, exist_ok=False, **kwargs):
        if not self.branch(branch).exists():
            self.branch().mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.branch(), self.branch(branch))

    def upload_folder(self, *, repo_id, folder_path, revision=None, delete_patterns=None, **kwargs):
        target = self.branch(revision)
        target.mkdir(parents=True, exist_ok=True)
        patterns = [delete_patterns] if isinstance(delete_patterns, str) else delete_patterns or []
        for file in [f for f in target.rglob("*") if f.is_file()]:
            if any(fnmatch.fnmatch(file.relative_to(target).as_posix(), p) for p in patterns):
                file.unlink()
        shutil.copytree(folder_path, target, dirs_exist_ok=True)
        return mock.Mock(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/0123")

    def snapshot_download(self, *, repo_id, repo_type=None, revision=None, cache_dir=None, **kwargs):
        self.downloads += 1
        snapshot = Path(cache_dir or self.cache) / f"snapshot-{self.downloads}"
        shutil.copytree(self.branch(revision), snapshot)
        return str(snapshot)


def assert_same_graph(loaded: KnowledgeGraph, graph: KnowledgeGraph) -> None:
    assert (loaded.name, loaded.relations, loaded._sources) == (graph.name, graph.relations, graph._sources)
    for name in ("heads", "relation_ids", "tails"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(graph, name))
        assert getattr(loaded, name).dtype == np.int64
    assert loaded._entities.equals(graph._entities)  # keys, sources, views: kinds, texts, paths, boxes
    assert loaded.report == graph.report
    assert loaded.stats() == graph.stats()
    for entity in range(graph.num_entities):
        for view in graph.entity_views(entity):
            if view.kind != ViewKind.TEXT:
                assert Path(loaded.root, view.path).read_bytes() == Path(graph.root, view.path).read_bytes()
                assert open_image(view.path, loaded.root).tobytes() == open_image(view.path, graph.root).tobytes()
