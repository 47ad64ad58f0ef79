# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Publishing Knowledge-CLIP on the Hugging Face Hub.

A trained model is published in two forms, both written by [`save_for_hub`] and uploaded by [`push_to_hub`]:

- the **full model** (`<out_dir>/full`): safetensors weights, a `config.json` whose `auto_map` names the flat custom
  code files copied beside it (`AutoModel` / `AutoModelForZeroShotImageClassification` / `AutoProcessor` with
  `trust_remote_code=True`), the processor and a model card;
- the **CLIP export** (`<out_dir>/clip`): a stock `CLIPModel` + `CLIPProcessor` with the same towers, no custom code,
  and a card that carries the hosted-widget examples (hosted widgets only run standard architectures) and links back
  to the full model.

The token is never handled here: `HfApi` reads it from `HF_TOKEN` or the login cache (`hf auth login`) when a request
needs it, and nothing in this module prints or logs it.
"""

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .configuration_knowledge_clip import KnowledgeCLIPConfig
from .graph_hub import check_repo_id

logger = logging.getLogger(__name__)

MODEL_CARD_TEMPLATE = Path(__file__).parent / "model_cards" / "knowledge_clip_card.md"
"""The Jinja template of both cards (shipped as package data)."""

FULL_MODEL_DIR = "full"
CLIP_EXPORT_DIR = "clip"
CLIP_REPO_SUFFIX = "-clip"


def _openai_clip_towers(text_width: int, vision_width: int, vision_layers: int, patch_size: int, projection_dim: int):
    """OpenAI's layout: 12-layer text towers of 77 tokens, 224-pixel images, heads of 64 dimensions, MLPs 4x wide."""
    return {
        "text_config": {"hidden_size": text_width, "intermediate_size": 4 * text_width, "num_hidden_layers": 12,
                        "num_attention_heads": text_width // 64, "max_position_embeddings": 77},
        "vision_config": {"hidden_size": vision_width, "intermediate_size": 4 * vision_width,
                          "num_hidden_layers": vision_layers, "num_attention_heads": vision_width // 64,
                          "image_size": 224, "patch_size": patch_size},
        "projection_dim": projection_dim,
    }  # fmt: skip


OPENAI_CLIP_TOWERS = {
    "openai/clip-vit-base-patch32": _openai_clip_towers(
        text_width=512, vision_width=768, vision_layers=12, patch_size=32, projection_dim=512
    ),
    "openai/clip-vit-large-patch14": _openai_clip_towers(
        text_width=768, vision_width=1024, vision_layers=24, patch_size=14, projection_dim=768
    ),
}
"""The tower shapes of OpenAI's CLIP checkpoints, from their config.json on the Hub, as `KnowledgeCLIPConfig`
arguments: model cards are rendered and the benchmarks build models of these shapes offline, so the shapes are
stated here rather than downloaded. Every other setting (vocabulary of 49,408 tokens, activation, layer-norm eps)
is the `CLIPConfig` default, which is OpenAI's."""

PAPER_ARXIV_ID = "2210.08901"
PAPER_BIBTEX = """@article{pan2022contrastive,
  title   = {Contrastive Language-Image Pre-Training with Knowledge Graphs},
  author  = {Pan, Xuran and Ye, Tianzhu and Han, Dongchen and Song, Shiji and Huang, Gao},
  journal = {arXiv preprint arXiv:2210.08901},
  note    = {Advances in Neural Information Processing Systems (NeurIPS) 2022},
  year    = {2022}
}"""

CARD_TAGS = ("clip", "knowledge-graph", "knowledge-clip", "vision", "multimodal", "contrastive-learning")

DEFAULT_WIDGET = (
    {
        "src": "https://huggingface.co/datasets/mishig/sample_images/resolve/main/cat-dog-music.png",
        "candidate_labels": "playing music, playing sports",
        "multi_class": False,
        "example_title": "Cat & Dog",
    },
)
"""Widget examples of the CLIP export's card when none are given (the Hub's zero-shot-image-classification format)."""

WIDGET_EXAMPLE_KEYS = frozenset({"src", "candidate_labels", "multi_class", "example_title", "group", "output"})
"""The keys of a zero-shot-image-classification widget example, as huggingface.js types it
(`WidgetExampleAssetAndZeroShotInput`: `src`, `candidate_labels`, `multi_class`, and the optional `example_title`,
`group` and `output` of every example). The widget keeps only the examples whose `src` and `candidate_labels` are
strings and whose `multi_class` is a boolean (its `isAssetAndZeroShotInput` check) and drops the others without a
word, so a card's examples are checked against these rules when it is written."""

BASE_MODEL_LICENSES = {"openai/clip-": "mit", "laion/CLIP-": "mit"}
"""Licenses of the CLIP checkpoints of well-known publishers, by Hub id prefix (OpenAI's CLIP and LAION's OpenCLIP
releases are MIT-licensed)."""


@dataclass(frozen=True)
class PaperResult:
    """A number Pan et al. (2022) report for their own models, for a card's "Reported in the paper" section.

    Args:
        source (`str`): Where in the paper (e.g. `"Table 1 (ViT-L/14)"`).
        task (`str`), dataset (`str`), metric (`str`): What was measured.
        clip (`str`): The paper's CLIP baseline, as the paper prints it (`"74.10"`, not `74.1`).
        knowledge_clip (`str`): The paper's Knowledge-CLIP, as the paper prints it.
    """

    source: str
    task: str
    dataset: str
    metric: str
    clip: str
    knowledge_clip: str


@dataclass(frozen=True)
class EvalTask:
    """How an evaluation task of `results.json` appears in a card's `model-index`.

    Args:
        task_type (`str`): the `model-index` task type.
        task_name (`str`): its human-readable name.
        towers_only (`bool`): the result depends only on the CLIP towers, so it holds for the CLIP export too.
    """

    task_type: str
    task_name: str
    towers_only: bool


EVAL_TASKS = {
    "zero_shot_classification": EvalTask("zero-shot-image-classification", "Zero-Shot Image Classification", True),
    "linear_probe": EvalTask("image-classification", "Linear Probe Classification", True),
    "image_retrieval": EvalTask("text-to-image-retrieval", "Text-to-Image Retrieval", True),
    "text_retrieval": EvalTask("image-to-text-retrieval", "Image-to-Text Retrieval", True),
    "link_prediction": EvalTask("link-prediction", "Knowledge Graph Link Prediction", False),
    "relation_prediction": EvalTask("relation-classification", "Relation Prediction", False),
}
"""Known task keys of `results.json`; any other key is published as is, on the full model's card only."""


def _task_of(key: str) -> EvalTask:
    normalized = key.strip().lower().replace("-", "_").replace(" ", "_")
    if normalized in EVAL_TASKS:
        return EVAL_TASKS[normalized]
    return EvalTask(normalized.replace("_", "-"), key.strip(), False)


def eval_results_from_dict(
    results: Mapping[str, Mapping[str, float]],
    default_dataset: str | None = None,
    towers_only: bool = False,
    source: str = "results",
) -> list[EvalResult]:
    """
    Turns evaluation results into `EvalResult` entries of a card's `model-index`.

    The expected shape is what the evaluation helper writes to `results.json`: `{task: {metric: value}}`, where a task
    key is `"<task>"` or `"<task>/<dataset>"` and each value is a number, e.g.

    ```json
    {"zero_shot_classification/demo-world-shapes": {"accuracy": 0.81, "top5_accuracy": 0.99},
     "link_prediction": {"mrr": 0.42, "hits_at_10": 0.77}}
    ```

    Known tasks (see `EVAL_TASKS`) get their Hub task type; others are published under their own name.

    Args:
        results (`Mapping[str, Mapping[str, float]]`):
            The results.
        default_dataset (`str`, *optional*):
            Dataset of the task keys that name none.
        towers_only (`bool`, *optional*, defaults to `False`):
            Keep only the tasks whose result depends on the CLIP towers alone (for the CLIP export's card).
        source (`str`, *optional*, defaults to `"results"`):
            What `results` came from, for error messages (e.g. the path of `results.json`).

    Raises:
        `ValueError`: a task without a dataset (and no `default_dataset`), a task that is not a mapping of metrics,
            or a metric value that is not a finite number; the message names the task and metric.
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"{source}: expected {{task: {{metric: value}}}}, got {type(results).__name__}.")
    eval_results = []
    for key, metrics in results.items():
        task_key, _, dataset = str(key).partition("/")
        dataset = dataset or default_dataset
        if not dataset:
            raise ValueError(
                f"{source}: task {key!r} names no dataset; write it as '<task>/<dataset>' or pass eval_dataset."
            )
        if not isinstance(metrics, Mapping):
            raise ValueError(f"{source}: task {key!r} must map metric names to numbers, got {metrics!r}.")
        task = _task_of(task_key)
        if towers_only and not task.towers_only:
            continue
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{source}: task {key!r} metric {metric!r} must be a finite number, got {value!r}.")
            eval_results.append(
                EvalResult(
                    task_type=task.task_type,
                    task_name=task.task_name,
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=str(metric),
                    metric_name=str(metric),
                    metric_value=value,
                )
            )
    return eval_results


def load_eval_results(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """
    Reads a `results.json` written by the evaluation helper (shape: see [`eval_results_from_dict`]).

    Args:
        path (`str` or `os.PathLike`): the file.

    Raises:
        `ValueError`: the file is not valid JSON (message with file, line and column) or not a JSON object.
    """
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object {{task: {{metric: value}}}}, got {type(results).__name__}.")
    return results


def resolve_license(license: str | None, base_model: str | None) -> str:
    """
    The license of a published model: the one given, else the base model's, because a model trained from a CLIP
    checkpoint inherits its license. The base model's license is looked up in `BASE_MODEL_LICENSES` (no network
    request: a card written offline must not depend on the Hub).

    Args:
        license (`str`, *optional*): an explicit license id (e.g. `"mit"`, `"apache-2.0"`).
        base_model (`str`, *optional*): the Hub id of the CLIP checkpoint the model was trained from.

    Raises:
        `ValueError`: no license was given and the base model's is not known.
    """
    if license:
        return license
    for prefix, base_license in BASE_MODEL_LICENSES.items():
        if base_model and base_model.startswith(prefix):
            return base_license
    raise ValueError(
        f"Cannot tell the license of base model {base_model!r}: pass license=... (the base model's license)."
    )


def create_model_card(
    config: KnowledgeCLIPConfig,
    repo_id: str,
    *,
    clip_export: bool = False,
    full_model_repo_id: str | None = None,
    clip_repo_id: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    datasets: Sequence[str] = (),
    eval_results: Mapping[str, Mapping[str, float]] | str | os.PathLike | None = None,
    eval_dataset: str | None = None,
    training_args: Mapping[str, Any] | None = None,
    widget: Sequence[Mapping[str, Any]] | None = None,
    tags: Sequence[str] = (),
    language: str = "en",
    provenance: str | None = None,
    paper_results: Sequence[PaperResult] = (),
) -> ModelCard:
    """
    The model card of a Knowledge-CLIP model, or of its CLIP export, rendered from `MODEL_CARD_TEMPLATE`.

    Metadata: `library_name: transformers`, `pipeline_tag: zero-shot-image-classification`, `base_model`, `license`,
    `datasets`, `tags`, a `model-index` built from `eval_results` and, on the CLIP export's card only, `widget`
    examples. The body describes the method (Pan et al., NeurIPS 2022), the relations, the teacher, the training
    settings, intended and out-of-scope uses, and the citation.

    Args:
        config ([`KnowledgeCLIPConfig`]):
            The trained model's configuration (relations, fusion encoder, graph and loss settings).
        repo_id (`str`):
            The Hub id the card is published under.
        clip_export (`bool`, *optional*, defaults to `False`):
            Write the CLIP export's card: stock-CLIP usage, the widget, a link back to `full_model_repo_id`, and only
            the results that depend on the towers alone.
        full_model_repo_id (`str`, *optional*):
            The full model's Hub id; required with `clip_export=True` (it becomes the export's `base_model`).
        clip_repo_id (`str`, *optional*):
            The CLIP export's Hub id, linked from the full model's card.
        base_model (`str`, *optional*):
            Hub id of the CLIP checkpoint training started from (and the distillation teacher).
        license (`str`, *optional*):
            License id; inherited from `base_model` when omitted (see [`resolve_license`]).
        datasets (`Sequence[str]`, *optional*):
            Hub ids or names of the knowledge graphs and caption sets trained on.
        eval_results (`dict`, `str` or `os.PathLike`, *optional*):
            `{task: {metric: value}}` or the path of a `results.json` (see [`eval_results_from_dict`]).
        eval_dataset (`str`, *optional*):
            Dataset of the result keys that name none.
        training_args (`Mapping[str, Any]`, *optional*):
            Training settings to list (learning rates, batch size, steps, ...); nested mappings are flattened to
            `"section.key"`.
        widget (`Sequence[Mapping]`, *optional*):
            Widget examples `{"src": image URL, "candidate_labels": [...] or "a, b", "example_title": ...}`;
            `DEFAULT_WIDGET` when omitted. Only the CLIP export's card carries them.
        tags (`Sequence[str]`, *optional*):
            Tags added to `CARD_TAGS`.
        language (`str`, *optional*, defaults to `"en"`):
            Language of the text tower.
        provenance (`str`, *optional*):
            A paragraph under the introduction saying how the model was made (the command and recipe), or that the
            card describes a recipe no model of which has been evaluated yet.
        paper_results (`Sequence[PaperResult]`, *optional*):
            Numbers reported by the paper, listed in a section of their own that says they are not this model's;
            they never enter the `model-index`.

    Returns:
        `huggingface_hub.ModelCard`: save it with `card.save(path)`.
    """
    if clip_export and not full_model_repo_id:
        raise ValueError("The CLIP export's card links back to the full model: pass full_model_repo_id.")
    if isinstance(eval_results, (str, os.PathLike)):
        source = str(eval_results)
        eval_results = load_eval_results(eval_results)
    else:
        source = "eval_results"
    model_index = eval_results_from_dict(eval_results or {}, eval_dataset, towers_only=clip_export, source=source)
    model_name = repo_id.split("/")[-1]
    extra_metadata = {"widget": _widget_examples(widget)} if clip_export else {}
    card_data = ModelCardData(
        language=language,
        license=resolve_license(license, base_model),
        library_name="transformers",
        pipeline_tag="zero-shot-image-classification",
        base_model=full_model_repo_id if clip_export else base_model,
        datasets=list(datasets) or None,
        tags=list(dict.fromkeys([*CARD_TAGS, *tags])),
        model_name=model_name,
        eval_results=model_index or None,
        **extra_metadata,
    )
    fusion = config.fusion_encoder_config
    return ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        clip_export=clip_export,
        full_model_repo_id=full_model_repo_id or repo_id,
        clip_repo_id=clip_repo_id,
        teacher=base_model,
        training_datasets=list(datasets),
        relations=list(config.relation_vocab),
        architecture={
            "Image tower": f"{config.vision_config.num_hidden_layers} layers, width {config.vision_config.hidden_size}, "
            f"patch {config.vision_config.patch_size}, image size {config.vision_config.image_size}",
            "Text tower": f"{config.text_config.num_hidden_layers} layers, width {config.text_config.hidden_size}, "
            f"{config.text_config.max_position_embeddings} positions",
            "Projection dim": config.projection_dim,
            "Fusion encoder": f"{fusion.num_hidden_layers} layers, width {fusion.hidden_size}, "
            f"{fusion.num_attention_heads} heads, drop-path {fusion.drop_path_rate}",
            "Graph reasoning (G2E)": f"{config.graph_num_layers} layers, {config.graph_num_neighbors} sampled "
            "in-neighbours per entity and hop",
            "Loss weights (E2E, E2R, G2E, KD)": f"{config.e2e_loss_weight}, {config.e2r_loss_weight}, "
            f"{config.g2e_loss_weight}, {config.kd_loss_weight}",
            "Temperatures (InfoNCE τ, KD)": f"{config.knowledge_temperature}, {config.kd_temperature}",
        },
        training_args=_flatten_settings(training_args or {}),
        results=[
            (result.task_name, result.dataset_name, result.metric_name, result.metric_value) for result in model_index
        ],
        provenance=provenance,
        paper_results=[astuple(result) for result in paper_results],
        arxiv_id=PAPER_ARXIV_ID,
        citation=PAPER_BIBTEX,
    )


def _flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings (e.g. a YAML training config) as one `{"section.key": value}` level, for the card's table."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(_flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _widget_examples(widget: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Widget examples in the Hub's format (`WIDGET_EXAMPLE_KEYS`): `candidate_labels` as one comma-separated string,
    `multi_class` `False` unless given.

    Raises:
        ValueError: naming the example and the key, for an unknown key, a `src` that is not an http(s) URL (the
            widget fetches it from the reader's browser), no candidate labels or a `multi_class` that is not a bool.
    """
    examples = []
    for index, example in enumerate(widget if widget is not None else DEFAULT_WIDGET):
        unknown = sorted(set(example) - WIDGET_EXAMPLE_KEYS)
        if unknown:
            raise ValueError(
                f"widget[{index}]: unknown key(s) {unknown}; expected some of {sorted(WIDGET_EXAMPLE_KEYS)}."
            )
        src, labels = example.get("src"), example.get("candidate_labels")
        if not isinstance(src, str) or not src.startswith(("https://", "http://")):
            raise ValueError(f"widget[{index}]: 'src' must be an http(s) URL of an image, got {src!r}.")
        labels = labels if isinstance(labels, str) or labels is None else ", ".join(labels)
        if not labels or not labels.strip(", "):
            raise ValueError(f"widget[{index}]: 'candidate_labels' must name at least one label.")
        multi_class = example.get("multi_class", False)
        if not isinstance(multi_class, bool):
            raise ValueError(f"widget[{index}]: 'multi_class' must be true or false, got {multi_class!r}.")
        examples.append(dict(example, candidate_labels=labels, multi_class=multi_class))
    return examples


@dataclass(frozen=True)
class HubFolders:
    """The two publishable folders written by [`save_for_hub`].

    Args:
        full (`pathlib.Path`): the full model with its custom code.
        clip (`pathlib.Path`): the stock-CLIP export.
    """

    full: Path
    clip: Path


def save_for_hub(
    model,
    processor,
    out_dir: str | os.PathLike,
    repo_id: str,
    clip_repo_id: str | None = None,
    overwrite: bool = False,
    **card_kwargs,
) -> HubFolders:
    """
    Writes both publishable forms of a trained model: `<out_dir>/full` and `<out_dir>/clip`, each with its card
    as `README.md`.

    `full` holds `model.safetensors`, `config.json` (with an `auto_map` for `AutoConfig`, `AutoModel` and
    `AutoModelForZeroShotImageClassification`), the flat custom-code files, `processor_config.json` (with an
    `auto_map` for `AutoProcessor`), `preprocessor_config.json`, the tokenizer files and `README.md`. `clip` holds a
    stock `CLIPModel` and `CLIPProcessor` (no custom code) and `README.md`.

    Args:
        model ([`KnowledgeCLIPModel`]):
            The trained model.
        processor ([`KnowledgeCLIPProcessor`]):
            Its processor.
        out_dir (`str` or `os.PathLike`):
            Where to write the two folders.
        repo_id (`str`):
            Hub id of the full model.
        clip_repo_id (`str`, *optional*):
            Hub id of the CLIP export; `<repo_id>-clip` when omitted.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace existing `full` / `clip` folders. Without it a non-empty folder is an error, because stale
            files left there would be uploaded too.
        **card_kwargs:
            Passed to [`create_model_card`] (`base_model`, `license`, `datasets`, `eval_results`, `training_args`,
            `widget`, ...).

    Returns:
        [`HubFolders`]: the paths of the two folders.
    """
    out_dir = Path(out_dir)
    clip_repo_id = clip_repo_id or repo_id + CLIP_REPO_SUFFIX
    folders = HubFolders(full=out_dir / FULL_MODEL_DIR, clip=out_dir / CLIP_EXPORT_DIR)
    # Cards first: they validate the metadata (license, results) before anything is written.
    full_card = create_model_card(model.config, repo_id, clip_repo_id=clip_repo_id, **card_kwargs)
    clip_card = create_model_card(
        model.config,
        clip_repo_id,
        clip_export=True,
        full_model_repo_id=repo_id,
        clip_repo_id=clip_repo_id,
        **card_kwargs,
    )
    for folder in (folders.full, folders.clip):
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{folder} is not empty; pass overwrite=True to replace it.")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)

    model.save_pretrained(folders.full)
    processor.save_pretrained(folders.full)
    # transformers 5's ProcessorMixin writes only processor_config.json; older clients look for preprocessor_config.json.
    processor.image_processor.save_pretrained(folders.full)
    full_card.save(folders.full / "README.md")

    model.save_clip_pretrained(folders.clip, processor)
    clip_card.save(folders.clip / "README.md")
    logger.info("Wrote the full model to %s and the CLIP export to %s.", folders.full, folders.clip)
    return folders


def _check_repo_ids(repo_id: str, clip_repo_id: str) -> None:
    """Both ids must be `<namespace>/<name>`: an upload to a bare name would go to a different repository."""
    check_repo_id(repo_id)
    check_repo_id(clip_repo_id, "clip_repo_id")


def upload_for_hub(
    folders: HubFolders,
    repo_id: str,
    clip_repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload Knowledge-CLIP",
    api: HfApi | None = None,
) -> dict[str, str]:
    """
    Uploads folders written by [`save_for_hub`]: `full` to `repo_id`, `clip` to `clip_repo_id`. Each repository is
    created if needed (`exist_ok=True`; `private` applies to new repositories only) and, for a `revision` other than
    `main`, the branch is created from `main` if needed.

    Args:
        folders ([`HubFolders`]):
            The two folders.
        repo_id (`str`):
            Hub id of the full model.
        clip_repo_id (`str`, *optional*):
            Hub id of the CLIP export; `<repo_id>-clip` when omitted.
        private (`bool`, *optional*, defaults to `False`):
            Create the repositories as private.
        revision (`str`, *optional*):
            Branch to upload to; the default branch when omitted.
        commit_message (`str`, *optional*, defaults to `"Upload Knowledge-CLIP"`):
            Message of both commits.
        api (`huggingface_hub.HfApi`, *optional*):
            The client; a default `HfApi()`, which reads the token from `HF_TOKEN` or the login cache.

    Returns:
        `dict[str, str]`: the commit URL of each repository, by repo id.
    """
    clip_repo_id = clip_repo_id or repo_id + CLIP_REPO_SUFFIX
    _check_repo_ids(repo_id, clip_repo_id)
    api = api or HfApi()
    commit_urls = {}
    for target_repo, folder in ((repo_id, folders.full), (clip_repo_id, folders.clip)):
        api.create_repo(target_repo, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(target_repo, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=target_repo, folder_path=folder, revision=revision, commit_message=commit_message
        )
        commit_urls[target_repo] = str(getattr(commit, "commit_url", commit))
        logger.info("Uploaded %s to %s (%s).", folder, target_repo, commit_urls[target_repo])
    return commit_urls


def push_to_hub(
    model,
    processor,
    repo_id: str,
    clip_repo_id: str | None = None,
    out_dir: str | os.PathLike | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload Knowledge-CLIP",
    api: HfApi | None = None,
    **card_kwargs,
) -> dict[str, str]:
    """
    Publishes a trained model in both forms: [`save_for_hub`], then [`upload_for_hub`]. This is what
    `pretrain.py --push_to_hub` and `examples/push_to_hub.py` call.

    Args:
        model ([`KnowledgeCLIPModel`]):
            The trained model.
        processor ([`KnowledgeCLIPProcessor`]):
            Its processor.
        repo_id (`str`):
            Hub id of the full model, e.g. `"your-name/knowledge-clip-vit-b-32"`.
        clip_repo_id (`str`, *optional*):
            Hub id of the CLIP export; `<repo_id>-clip` when omitted.
        out_dir (`str` or `os.PathLike`, *optional*):
            Where to keep the uploaded folders (replaced if present); a temporary directory, deleted afterwards,
            when omitted.
        private (`bool`, *optional*, defaults to `False`):
            Create the repositories as private.
        revision (`str`, *optional*):
            Branch to upload to.
        commit_message (`str`, *optional*, defaults to `"Upload Knowledge-CLIP"`):
            Message of both commits.
        api (`huggingface_hub.HfApi`, *optional*):
            The client; a default `HfApi()` when omitted.
        **card_kwargs:
            Passed to [`create_model_card`].

    Returns:
        `dict[str, str]`: the commit URL of each repository, by repo id.
    """
    clip_repo_id = clip_repo_id or repo_id + CLIP_REPO_SUFFIX
    _check_repo_ids(repo_id, clip_repo_id)
    with tempfile.TemporaryDirectory() as tmp_dir:
        folders = save_for_hub(
            model, processor, out_dir or tmp_dir, repo_id, clip_repo_id, overwrite=True, **card_kwargs
        )
        return upload_for_hub(folders, repo_id, clip_repo_id, private, revision, commit_message, api)


__all__ = [
    "EVAL_TASKS",
    "HubFolders",
    "PaperResult",
    "WIDGET_EXAMPLE_KEYS",
    "create_model_card",
    "eval_results_from_dict",
    "load_eval_results",
    "push_to_hub",
    "resolve_license",
    "save_for_hub",
    "upload_for_hub",
]
