# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
Two pipeline tasks: `"knowledge-triplet-completion"` (triplet completion, relation ranking and triplet scoring with a
[`KnowledgeCLIPModel`]) and `"knowledge-visual-question-answering"` (answers from a
[`KnowledgeCLIPForQuestionAnswering`], with the call and output of transformers' removed
`visual-question-answering` pipeline).

This module imports only flat siblings (`from .reasoning import ...`), so `pipe.save_pretrained(dir)` copies it with
what it needs and `pipeline(model=dir, trust_remote_code=True)` runs where `knowledge_clip` is not installed.
"""

import torch
from PIL import Image
from transformers import AutoModel, AutoModelForVisualQuestionAnswering, Pipeline
from transformers.image_utils import load_image
from transformers.pipelines import PIPELINE_REGISTRY

from .image_conversion import to_rgb
from .reasoning import KnowledgeReasoner

TASK = "knowledge-triplet-completion"
VQA_TASK = "knowledge-visual-question-answering"
"""transformers 5 refuses the name `visual-question-answering` before it looks at the registry (it lists it among
removed tasks and points to `image-text-to-text`, which needs a generative model), so ours has its own name."""


def _top_k_params(top_k) -> dict:
    """The postprocess parameters of a call's `top_k` (none when not given), checked to be a positive integer."""
    if top_k is None:
        return {}
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
    return {"top_k": top_k}


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
        return {}, {}, _top_k_params(top_k)

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


class KnowledgeVisualQuestionAnsweringPipeline(Pipeline):
    r"""
    Answers a question about an image with a [`KnowledgeCLIPForQuestionAnswering`]: the call and output of
    transformers' former `visual-question-answering` pipeline. Scores are the classifier's independent sigmoids over
    the answer vocabulary (`config.id2label`), best first.

    Call: `pipe(image=..., question=..., top_k=5)` or `pipe({"image": ..., "question": ...})`, or a list of such
    dicts; `image` is a `PIL.Image.Image`, a local path or a URL. Returns `[{"score": s, "answer": a}, ...]` (a list
    of those for a list of inputs).

    Example (answers depend on the checkpoint):

    ```python
    >>> import knowledge_clip  # registers the task
    >>> from transformers import pipeline
    >>> pipe = pipeline("knowledge-visual-question-answering", model=model, processor=processor)
    >>> pipe(image="scene.png", question="what colour is the square?", top_k=2)
    [{'score': 0.91, 'answer': 'red'}, {'score': 0.05, 'answer': 'blue'}]
    ```
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False

    def __call__(self, image=None, question: str | None = None, **kwargs):
        if isinstance(image, (Image.Image, str)):
            if question is None:
                raise ValueError("Give a question with the image: pipe(image=..., question=...).")
            inputs = {"image": image, "question": question}
        elif image is None and question is not None:
            raise ValueError("Give an image with the question: pipe(image=..., question=...).")
        else:  # a dict, or a list of dicts
            inputs = image
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k=None, timeout=None, **kwargs):
        return {"timeout": timeout}, {}, _top_k_params(top_k)

    def preprocess(self, inputs: dict, timeout=None) -> dict:
        if not isinstance(inputs, dict) or set(inputs) != {"image", "question"}:
            raise ValueError(f"Expected a dict with 'image' and 'question', got {inputs!r:.80}.")
        image = to_rgb(load_image(inputs["image"], timeout=timeout))
        model_inputs = self.processor(
            text=[inputs["question"]], images=[image], padding=True, truncation=True, return_tensors="pt"
        )
        model_inputs["pixel_values"] = model_inputs["pixel_values"].to(self.dtype)
        return dict(model_inputs)

    def _forward(self, model_inputs: dict) -> dict:
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs: dict, top_k: int = 5):
        probabilities = model_outputs["logits"][0].float().sigmoid()
        top_k = min(top_k, probabilities.shape[0])
        scores, indices = torch.topk(probabilities, top_k)
        id2label = self.model.config.id2label
        return [{"score": score, "answer": id2label[index]} for score, index in zip(scores.tolist(), indices.tolist())]


def register_pipeline() -> None:
    """Registers the package's pipeline tasks with transformers' pipeline registry (idempotent)."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=KnowledgeTripletCompletionPipeline, pt_model=AutoModel, type="multimodal"
    )
    PIPELINE_REGISTRY.register_pipeline(
        VQA_TASK,
        pipeline_class=KnowledgeVisualQuestionAnsweringPipeline,
        pt_model=AutoModelForVisualQuestionAnswering,
        type="multimodal",
    )


__all__ = [
    "TASK",
    "VQA_TASK",
    "KnowledgeTripletCompletionPipeline",
    "KnowledgeVisualQuestionAnsweringPipeline",
    "register_pipeline",
]
