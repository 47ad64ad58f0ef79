# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Top-k accuracy, as an offline `evaluate` module (`knowledge_clip.evaluation.load_metric("topk_accuracy")`)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-k accuracy: the fraction of examples whose true class is among the k best-scored classes.

Ties count against the model: the rank of the true class is the number of classes scored at least as high as it
(itself included), so a model that scores every class equally has rank = number of classes, never 1.

Two input forms are accepted:
- scores: `predictions` are the scores of every class (one list per example), `references` the true class indices;
- ranks: `predictions` are the 1-based ranks of the true class, already computed (e.g. in chunks over a large label
  set), and `references` the number of classes each was ranked among.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]` or `list[int]`):
        Per example, the score of every class, or the 1-based rank of the true class.
    references (`list[int]`):
        Per example, the index of the true class (scores form) or the number of classes (ranks form).
    top_k (`int` or `list[int]`, *optional*, defaults to `(1, 5)`):
        The values of k. Any other keyword argument is ignored (`evaluate.combine` forwards every keyword to every
        module).

Returns:
    `dict`: `top{k}_accuracy` for each k, in [0, 1], and `num_examples`.

Examples:
    >>> metric = evaluate.load("src/knowledge_clip/metrics/topk_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], references=[2, 0], top_k=[1, 2])
    {'top1_accuracy': 0.5, 'top2_accuracy': 1.0, 'num_examples': 2}
"""

_CITATION = ""


def ranks_from_scores(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1-based rank of each label among its row of scores; ties count against the label."""
    true_scores = scores[np.arange(len(labels)), labels]
    return (scores >= true_scores[:, None]).sum(axis=1)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopkAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Value("int64"),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            ],
        )

    def _compute(self, predictions, references, top_k=(1, 5), **kwargs):
        top_k = [top_k] if isinstance(top_k, int) else list(top_k)
        references = np.asarray(references, dtype=np.int64)
        if len(references) == 0:
            raise ValueError("topk_accuracy needs at least one example.")
        if isinstance(predictions[0], (int, np.integer)):
            ranks = np.asarray(predictions, dtype=np.int64)
            if np.any(ranks < 1) or np.any(ranks > references):
                raise ValueError("Each rank must lie in [1, number of classes] (the reference).")
        else:
            scores = np.asarray(predictions, dtype=np.float64)
            if scores.ndim != 2:
                raise ValueError("Every example must score the same number of classes.")
            if np.any(references < 0) or np.any(references >= scores.shape[1]):
                raise ValueError(f"References must be class indices in [0, {scores.shape[1]}).")
            ranks = ranks_from_scores(scores, references)
        result = {f"top{k}_accuracy": float(np.mean(ranks <= k)) for k in top_k}
        result["num_examples"] = len(ranks)
        return result
