"""Publishing: model cards, the two Hub folders, uploads with the network boundary (`HfApi`) replaced."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from safetensors.torch import load_file, save_file
from tiny import RELATIONS, solid_image, tiny_config, tiny_processor, tiny_tokenizer

from knowledge_clip import KnowledgeCLIPModel
from knowledge_clip.hub import (
    DEFAULT_WIDGET,
    create_model_card,
    eval_results_from_dict,
    load_eval_results,
    push_to_hub,
    resolve_license,
    save_for_hub,
)

REPO_ID = "someone/knowledge-clip-tiny"
CLIP_REPO_ID = "someone/knowledge-clip-tiny-clip"
BASE_MODEL = "openai/clip-vit-base-patch32"
DATASETS = ["visual_genome", "conceptnet5", "coco_captions"]
RESULTS = {
    "zero_shot_classification/demo-world-shapes": {"accuracy": 0.75, "top5_accuracy": 1.0},
    "link_prediction/demo-world": {"mrr": 0.5},
}
TRAINING_ARGS = {"optimizer": {"clip_lr": 1e-5, "new_lr": 1e-3}, "max_steps": 20}
CARD_KWARGS = {
    "base_model": BASE_MODEL,
    "datasets": DATASETS,
    "eval_results": RESULTS,
    "training_args": TRAINING_ARGS,
}
TOKEN_SENTINEL = "hf_SENTINELtokenNEVERprintedXYZ"

FULL_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "configuration_knowledge_clip.py",
    "modeling_knowledge_clip.py",
    "losses.py",
    "processing_knowledge_clip.py",
    "image_conversion.py",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
}
CLIP_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
}
CARD_METADATA_KEYS = {"library_name", "pipeline_tag", "base_model", "license", "datasets", "tags", "model-index"}


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    return KnowledgeCLIPModel(tiny_config(tokenizer)).eval(), tiny_processor(tokenizer)


@pytest.fixture(scope="module")
def folders(model_and_processor, tmp_path_factory):
    model, processor = model_and_processor
    return save_for_hub(model, processor, tmp_path_factory.mktemp("hub"), REPO_ID, **CARD_KWARGS)


def files_in(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def front_matter(card_text: str) -> dict:
    assert card_text.startswith("---\n")
    return yaml.safe_load(card_text.split("---\n")[1])


# ---------------------------------------------------------------------------------------------------------------------
# The two folders
# ---------------------------------------------------------------------------------------------------------------------
def test_full_folder_holds_weights_custom_code_processor_and_card(folders):
    assert files_in(folders.full) == FULL_FILES
    config = json.loads((folders.full / "config.json").read_text())
    assert config["model_type"] == "knowledge_clip"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_knowledge_clip.KnowledgeCLIPConfig",
        "AutoModel": "modeling_knowledge_clip.KnowledgeCLIPModel",
        "AutoModelForZeroShotImageClassification": "modeling_knowledge_clip.KnowledgeCLIPModel",
    }
    processor_config = json.loads((folders.full / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoProcessor": "processing_knowledge_clip.KnowledgeCLIPProcessor"}
    assert processor_config["relation_vocab"] == RELATIONS
    assert "image_mean" in json.loads((folders.full / "preprocessor_config.json").read_text())


def test_clip_folder_is_stock_clip_without_custom_code(folders):
    assert files_in(folders.clip) == CLIP_FILES
    config = json.loads((folders.clip / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert config["architectures"] == ["CLIPModel"]
    leaked = {"auto_map", "fusion_encoder_config", "relation_vocab", "graph_num_layers", "e2e_loss_weight"} & set(
        config
    )
    assert not leaked
    weights = load_file(folders.clip / "model.safetensors")
    assert not [name for name in weights if name.startswith(("fusion_encoder.", "relation_head.", "graph_head."))]


def test_save_for_hub_refuses_to_mix_with_stale_files(model_and_processor, tmp_path):
    model, processor = model_and_processor
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "pytorch_model-00001-of-00002.bin").write_bytes(b"stale")
    with pytest.raises(FileExistsError, match="full is not empty"):
        save_for_hub(model, processor, tmp_path, REPO_ID, **CARD_KWARGS)
    folders = save_for_hub(model, processor, tmp_path, REPO_ID, overwrite=True, **CARD_KWARGS)
    assert files_in(folders.full) == FULL_FILES


# ---------------------------------------------------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------------------------------------------------
def test_full_model_card_metadata_round_trips(folders):
    text = (folders.full / "README.md").read_text()
    metadata = front_matter(text)
    assert CARD_METADATA_KEYS <= set(metadata)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "zero-shot-image-classification"
    assert metadata["base_model"] == BASE_MODEL
    assert metadata["license"] == "mit"
    assert metadata["datasets"] == DATASETS
    assert {"clip", "knowledge-graph", "knowledge-clip"} <= set(metadata["tags"])
    assert "widget" not in metadata  # a custom-code repo gets no hosted widget; the CLIP export carries it

    card = ModelCard.load(folders.full / "README.md")
    assert card.data.eval_results == [
        EvalResult(
            task_type="zero-shot-image-classification",
            task_name="Zero-Shot Image Classification",
            dataset_type="demo-world-shapes",
            dataset_name="demo-world-shapes",
            metric_type=metric,
            metric_name=metric,
            metric_value=value,
        )
        for metric, value in RESULTS["zero_shot_classification/demo-world-shapes"].items()
    ] + [
        EvalResult(
            task_type="link-prediction",
            task_name="Knowledge Graph Link Prediction",
            dataset_type="demo-world",
            dataset_name="demo-world",
            metric_type="mrr",
            metric_name="mrr",
            metric_value=0.5,
        )
    ]
    assert ModelCardData(**card.data.to_dict()).to_dict() == card.data.to_dict()
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()

    body = card.text
    for expected in (
        "Pan et al.",
        "NeurIPS 2022",
        "arXiv:2210.08901",
        "not the 2024 paper",
        "@article{pan2022contrastive",
        f"[{CLIP_REPO_ID}](https://huggingface.co/{CLIP_REPO_ID})",
        f"[{BASE_MODEL}](https://huggingface.co/{BASE_MODEL})",
        "trust_remote_code=True",
        "Out-of-scope use",
        "| `optimizer.clip_lr` | 1e-05 |",
        "| Knowledge Graph Link Prediction | demo-world | mrr | 0.5 |",
        *(f"`{relation}`" for relation in RELATIONS),
        *(f"`{dataset}`" for dataset in DATASETS),
    ):
        assert expected in body, expected
    assert "{{" not in body and "{%" not in body


def test_clip_export_card_carries_widget_and_links_back(folders):
    card = ModelCard.load(folders.clip / "README.md")
    metadata = front_matter(str(card))
    assert CARD_METADATA_KEYS <= set(metadata)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "zero-shot-image-classification"
    assert metadata["base_model"] == REPO_ID
    assert metadata["license"] == "mit"
    assert metadata["widget"] == list(DEFAULT_WIDGET)
    assert isinstance(metadata["widget"][0]["candidate_labels"], str)
    # Only the results that the CLIP towers alone produce.
    assert {result.task_type for result in card.data.eval_results} == {"zero-shot-image-classification"}
    assert metadata["model-index"][0]["name"] == CLIP_REPO_ID.split("/")[1]
    assert f"CLIP export of [{REPO_ID}](https://huggingface.co/{REPO_ID})" in card.text
    assert "trust_remote_code" in card.text and "no `trust_remote_code`" in card.text
    assert f'pipeline("zero-shot-image-classification", model="{CLIP_REPO_ID}")' in card.text


def test_card_accepts_results_json_and_widget_labels_list(model_and_processor, tmp_path):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"image_retrieval": {"recall@1": 0.25}}))
    widget = [{"src": "https://example.com/cat.png", "candidate_labels": ["a cat", "a dog"], "example_title": "Cat"}]
    card = create_model_card(
        model_and_processor[0].config,
        CLIP_REPO_ID,
        clip_export=True,
        full_model_repo_id=REPO_ID,
        license="apache-2.0",
        eval_results=results_path,
        eval_dataset="flickr30k",
        widget=widget,
    )
    assert card.data.license == "apache-2.0"
    assert card.data.widget == [dict(widget[0], candidate_labels="a cat, a dog", multi_class=False)]
    assert [(r.task_type, r.dataset_name, r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("text-to-image-retrieval", "flickr30k", "recall@1", 0.25)
    ]
    assert "datasets" not in front_matter(str(card))


@pytest.mark.parametrize(
    "results, message",
    [
        ({"zero_shot_classification": {"accuracy": 0.5}}, "task 'zero_shot_classification' names no dataset"),
        ({"link_prediction/wn18": 0.5}, "task 'link_prediction/wn18' must map metric names"),
        ({"link_prediction/wn18": {"mrr": "high"}}, "metric 'mrr' must be a finite number"),
        ({"link_prediction/wn18": {"mrr": float("nan")}}, "metric 'mrr' must be a finite number"),
        ([0.5], "expected"),
    ],
)
def test_bad_results_are_reported_by_task_and_metric(results, message):
    with pytest.raises(ValueError, match=message):
        eval_results_from_dict(results, source="results.json")


def test_bad_results_file_names_file_and_line(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{\n  "link_prediction/wn18": {"mrr": 0.5,}\n}')
    with pytest.raises(ValueError, match=r"results\.json:2:\d+: not valid JSON"):
        load_eval_results(path)


def test_license_is_inherited_from_the_base_model():
    assert resolve_license(None, "openai/clip-vit-large-patch14") == "mit"
    assert resolve_license("apache-2.0", "openai/clip-vit-large-patch14") == "apache-2.0"
    with pytest.raises(ValueError, match="pass license="):
        resolve_license(None, "someone/unknown-clip")
    with pytest.raises(ValueError, match="pass license="):
        resolve_license(None, None)


def test_clip_export_card_needs_the_full_model_id(model_and_processor):
    with pytest.raises(ValueError, match="full_model_repo_id"):
        create_model_card(model_and_processor[0].config, CLIP_REPO_ID, clip_export=True, license="mit")


# ---------------------------------------------------------------------------------------------------------------------
# Uploads: only HfApi is replaced
# ---------------------------------------------------------------------------------------------------------------------
def recording_api() -> tuple[mock.MagicMock, dict]:
    """An `HfApi` stand-in that records, at call time, the files and card each `upload_folder` would send."""
    uploads = {}
    api = mock.create_autospec(HfApi, instance=True)

    def upload_folder(*, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        uploads[repo_id] = {
            "files": files_in(folder),
            "card": ModelCard.load(folder / "README.md").data.to_dict(),
            "kwargs": kwargs,
        }
        return mock.Mock(commit_url=f"https://huggingface.co/{repo_id}/commit/0123")

    api.upload_folder.side_effect = upload_folder
    return api, uploads


def test_push_to_hub_creates_both_repos_and_uploads_exact_files(model_and_processor):
    model, processor = model_and_processor
    api, uploads = recording_api()
    urls = push_to_hub(model, processor, REPO_ID, private=True, revision="v1", api=api, **CARD_KWARGS)

    assert urls == {repo: f"https://huggingface.co/{repo}/commit/0123" for repo in (REPO_ID, CLIP_REPO_ID)}
    assert api.create_repo.call_args_list == [
        mock.call(REPO_ID, private=True, exist_ok=True),
        mock.call(CLIP_REPO_ID, private=True, exist_ok=True),
    ]
    assert api.create_branch.call_args_list == [
        mock.call(REPO_ID, branch="v1", exist_ok=True),
        mock.call(CLIP_REPO_ID, branch="v1", exist_ok=True),
    ]
    assert uploads[REPO_ID]["files"] == FULL_FILES
    assert uploads[CLIP_REPO_ID]["files"] == CLIP_FILES
    assert uploads[REPO_ID]["kwargs"] == {"revision": "v1", "commit_message": "Upload Knowledge-CLIP"}
    full_card, clip_card = uploads[REPO_ID]["card"], uploads[CLIP_REPO_ID]["card"]
    assert (full_card["base_model"], clip_card["base_model"]) == (BASE_MODEL, REPO_ID)
    assert "widget" not in full_card and clip_card["widget"] == list(DEFAULT_WIDGET)
    assert full_card["pipeline_tag"] == clip_card["pipeline_tag"] == "zero-shot-image-classification"


def test_push_to_hub_default_branch_creates_no_branch(model_and_processor):
    api, uploads = recording_api()
    push_to_hub(*model_and_processor, REPO_ID, clip_repo_id="other/clip-export", api=api, **CARD_KWARGS)
    api.create_branch.assert_not_called()
    assert set(uploads) == {REPO_ID, "other/clip-export"}
    assert uploads[REPO_ID]["kwargs"]["revision"] is None
    assert api.create_repo.call_args_list[0] == mock.call(REPO_ID, private=False, exist_ok=True)


def test_repo_ids_need_a_namespace(model_and_processor):
    api, _ = recording_api()
    with pytest.raises(ValueError, match="repo_id must be '<namespace>/<name>'"):
        push_to_hub(*model_and_processor, "no-namespace", api=api, **CARD_KWARGS)
    api.create_repo.assert_not_called()


def test_cli_writes_both_folders_pushes_and_never_shows_the_token(
    model_and_processor, tmp_path, monkeypatch, caplog, capsys
):
    model, processor = model_and_processor
    model_dir = tmp_path / "trained"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    (model_dir / "results.json").write_text(json.dumps(RESULTS))
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(TRAINING_ARGS))
    monkeypatch.setenv("HF_TOKEN", TOKEN_SENTINEL)
    api, uploads = recording_api()
    monkeypatch.setattr("knowledge_clip.hub.HfApi", lambda: api)
    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    try:
        import push_to_hub as push_to_hub_cli
    finally:
        sys.path.pop(0)

    with caplog.at_level(logging.DEBUG):
        push_to_hub_cli.main(
            [str(model_dir), "--repo_id", REPO_ID, "--base_model", BASE_MODEL, "--datasets", *DATASETS]
            + ["--training_args", str(tmp_path / "train.yaml"), "--private", "--revision", "dev"]
        )
    assert uploads[REPO_ID]["files"] == FULL_FILES and uploads[CLIP_REPO_ID]["files"] == CLIP_FILES
    assert len(uploads[REPO_ID]["card"]["model-index"][0]["results"]) == 2  # results.json found in model_dir
    assert api.create_repo.call_args_list[1] == mock.call(CLIP_REPO_ID, private=True, exist_ok=True)
    captured = capsys.readouterr()
    shown = caplog.text + captured.out + captured.err
    assert CLIP_REPO_ID in shown  # the logs were captured ...
    assert TOKEN_SENTINEL not in shown  # ... and hold no token
    for path in (model_dir / "hub").rglob("*"):
        if path.is_file():
            assert TOKEN_SENTINEL.encode() not in path.read_bytes(), path


def test_cli_dry_run_uploads_nothing_and_never_shows_the_token(model_and_processor, tmp_path):
    model, processor = model_and_processor
    model.save_pretrained(tmp_path / "trained")
    processor.save_pretrained(tmp_path / "trained")
    env = {**os.environ, "HF_TOKEN": TOKEN_SENTINEL, "HF_HUB_OFFLINE": "1", "HF_DEBUG": "1"}
    script = Path(__file__).parents[1] / "examples" / "push_to_hub.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "trained"), "--repo_id", REPO_ID]
        + ["--base_model", BASE_MODEL, "--out_dir", str(tmp_path / "hub"), "--dry_run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Dry run: nothing uploaded." in result.stderr
    assert TOKEN_SENTINEL not in result.stdout + result.stderr
    assert files_in(tmp_path / "hub" / "full") == FULL_FILES
    assert files_in(tmp_path / "hub" / "clip") == CLIP_FILES


# ---------------------------------------------------------------------------------------------------------------------
# The exported folders load where knowledge_clip cannot be imported
# ---------------------------------------------------------------------------------------------------------------------
WITHOUT_PACKAGE = """
import sys; sys.modules["knowledge_clip"] = None
import json
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModel, CLIPModel, CLIPProcessor, pipeline

clip_dir, full_dir, work = sys.argv[1:4]
inputs = load_file(f"{work}/inputs.safetensors")

clip = CLIPModel.from_pretrained(clip_dir).eval()
assert type(clip).__module__ == "transformers.models.clip.modeling_clip"
assert type(CLIPProcessor.from_pretrained(clip_dir)).__name__ == "CLIPProcessor"
full = AutoModel.from_pretrained(full_dir, trust_remote_code=True).eval()
assert type(full).__module__.startswith("transformers_modules."), type(full).__module__
with torch.no_grad():
    features = {
        "clip_image": clip.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
        "clip_text": clip.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output,
        "full_image": full.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
    }
save_file(features, f"{work}/features.safetensors")

classifier = pipeline("zero-shot-image-classification", model=clip_dir)
scores = classifier(Image.open(f"{work}/image.png"), candidate_labels=json.loads(sys.argv[4]), hypothesis_template="{}")
print(json.dumps(scores))
"""


def test_exports_load_and_run_without_the_package(folders, model_and_processor, tmp_path):
    model, processor = model_and_processor
    labels = ["red circle", "blue square", "green triangle"]
    image = solid_image((200, 30, 30))
    image.save(tmp_path / "image.png")
    text_inputs = processor(text=labels, padding=True, return_tensors="pt")
    pixel_values = processor(images=[image, solid_image((30, 30, 200))], return_tensors="pt")["pixel_values"]
    save_file(
        {
            "pixel_values": pixel_values,
            "input_ids": text_inputs["input_ids"],
            "attention_mask": text_inputs["attention_mask"],
        },
        tmp_path / "inputs.safetensors",
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_PACKAGE,
            str(folders.clip),
            str(folders.full),
            str(tmp_path),
            json.dumps(labels),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr

    exported = load_file(tmp_path / "features.safetensors")
    with torch.no_grad():
        image_features = model.get_image_features(pixel_values=pixel_values).pooler_output
        text_features = model.get_text_features(**text_inputs).pooler_output
        expected_logits = model(**text_inputs, pixel_values=pixel_values[:1]).logits_per_image[0]
    assert torch.equal(exported["clip_image"], image_features)
    assert torch.equal(exported["clip_text"], text_features)
    assert torch.equal(exported["full_image"], image_features)

    scores = {entry["label"]: entry["score"] for entry in json.loads(result.stdout.strip().splitlines()[-1])}
    expected = dict(zip(labels, expected_logits.softmax(dim=-1).tolist()))
    assert scores.keys() == expected.keys()
    for label in labels:
        assert scores[label] == pytest.approx(expected[label], abs=1e-6)
