# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The `"knowledge-triplet-completion"` pipeline: triplet completion, relation ranking and triplet scoring with a
[`KnowledgeCLIPModel`], as a transformers `Pipeline`.

This module imports only flat siblings (`from .reasoning import ...`), so `pipe.save_pretrained(dir)` copies it with
what it needs and `pipeline(model=dir, trust_remote_code=True)` runs where `knowledge_clip` is not installed.
"""

from PIL import Image
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .reasoning import KnowledgeReasoner

TASK = "knowledge-triplet-completion"


class KnowledgeTripletCompletionPipeline(Pipeline):
    r"""
    Asks a Knowledge-CLIP model about one triplet at a time; what it answers depends on which parts are given.
    Entities are texts (`str`) or images (`PIL.Image.Image`); relations are texts.

    - `{"head": h, "relation": r, "candidates": [...]}`: rank candidate tails of `(h, r, ?)` by
      `cos(Y(h, r, -), Y(-, -, t))` -> `[{"tail": t, "score": s}, ...]`;
    - `{"tail": t, "relation": r, "candidates": [...]}`: rank candidate heads of `(?, r, t)` -> `[{"head": h, ...}]`;
    - `{"head": h, "tail": t}`: rank the model's relations for `(h, ?, t)` (E2R classifier, softmax probabilities)
      -> `[{"relation": r, "score": p}, ...]`;
    - `{"head": h, "relation": r, "tail": t}`: score the triplet -> `{"score": s}`.

    Call parameters: `top_k` (`int`, *optional*) keeps the best `top_k` answers of a ranking.

    Example (scores depend on the checkpoint):

    ```python
    >>> import knowledge_clip  # registers the task
    >>> from transformers import pipeline
    >>> pipe = pipeline("knowledge-triplet-completion", model=model, processor=processor)
    >>> pipe({"head": "square", "relation": "is a", "candidates": ["shape", "colour", "animal"]}, top_k=1)
    [{'tail': 'shape', 'score': 0.83}]
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, top_k=None, batch_size=None, **kwargs):
        postprocess_params = {}
        if top_k is not None:
            if not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
            postprocess_params["top_k"] = top_k
        return {}, {}, postprocess_params

    def preprocess(self, inputs: dict) -> dict:
        if not isinstance(inputs, dict):
            raise ValueError(
                "knowledge-triplet-completion takes a dict with 'head'/'relation'/'tail'/'candidates', got "
                f"{type(inputs).__name__}."
            )
        unknown = set(inputs) - {"head", "relation", "tail", "candidates"}
        if unknown:
            raise ValueError(f"Unknown keys {sorted(unknown)}; expected head, relation, tail and candidates.")
        for part in ("head", "tail"):
            if part in inputs and not isinstance(inputs[part], (str, Image.Image)):
                raise ValueError(f"{part} must be a str or a PIL.Image.Image, got {type(inputs[part]).__name__}.")
        given = frozenset(key for key in ("head", "relation", "tail", "candidates") if key in inputs)
        questions = {
            frozenset({"head", "relation", "candidates"}): "rank_tails",
            frozenset({"tail", "relation", "candidates"}): "rank_heads",
            frozenset({"head", "tail"}): "rank_relations",
            frozenset({"head", "relation", "tail"}): "score_triplet",
        }
        if given not in questions:
            raise ValueError(
                f"Cannot tell the question from the keys {sorted(given)}: give head+relation+candidates, "
                "tail+relation+candidates, head+tail, or head+relation+tail."
            )
        return {"question": questions[given], **inputs}

    def _forward(self, model_inputs: dict) -> dict:
        reasoner = KnowledgeReasoner(self.model, self.processor)
        question = model_inputs["question"]
        if question == "rank_tails":
            answers = reasoner.rank_tails(model_inputs["head"], model_inputs["relation"], model_inputs["candidates"])
        elif question == "rank_heads":
            answers = reasoner.rank_heads(model_inputs["tail"], model_inputs["relation"], model_inputs["candidates"])
        elif question == "rank_relations":
            answers = reasoner.rank_relations(model_inputs["head"], model_inputs["tail"])
        else:
            triplet = (model_inputs["head"], model_inputs["relation"], model_inputs["tail"])
            answers = {"score": reasoner.score_triplets([triplet])[0]}
        return {"question": question, "answers": answers}

    def postprocess(self, model_outputs: dict, top_k: int | None = None):
        answers = model_outputs["answers"]
        if isinstance(answers, list) and top_k is not None:
            return answers[:top_k]
        return answers


def register_pipeline() -> None:
    """Registers `"knowledge-triplet-completion"` with transformers' pipeline registry (idempotent)."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=KnowledgeTripletCompletionPipeline, pt_model=AutoModel, type="multimodal"
    )


__all__ = ["TASK", "KnowledgeTripletCompletionPipeline", "register_pipeline"]
