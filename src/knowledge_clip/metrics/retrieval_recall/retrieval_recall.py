# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Recall@k of retrieval, as an offline `evaluate` module (`knowledge_clip.evaluation.load_metric("retrieval_recall")`)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Recall@k of retrieval (image->text or text->image): the fraction of queries for which at least one relevant item is
among the k first retrieved.

Two input forms are accepted:
- lists: `predictions` are the retrieved item ids of each query, best first (at least max(k) of them, or all),
  `references` the ids of the items relevant to the query;
- ranks: `predictions` are the 1-based rank of the best-ranked relevant item of each query, already computed (e.g. by
  a chunked search over a large gallery), and `references` the number of gallery items each was ranked among.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]` or `list[int]`):
        Per query, the retrieved ids best first, or the rank of the first relevant item.
    references (`list[list[int]]` or `list[int]`):
        Per query, the relevant ids (lists form) or the gallery size (ranks form).
    recall_at (`int` or `list[int]`, *optional*, defaults to `(1, 5, 10)`):
        The values of k. Any other keyword argument is ignored (`evaluate.combine` forwards every keyword to every
        module).

Returns:
    `dict`: `recall@{k}` for each k, in [0, 1], and `num_queries`.

Examples:
    >>> metric = evaluate.load("src/knowledge_clip/metrics/retrieval_recall")
    >>> metric.compute(predictions=[[3, 1, 2], [0, 2, 1]], references=[[1], [1, 5]], recall_at=[1, 2])
    {'recall@1': 0.0, 'recall@2': 0.5, 'num_queries': 2}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("int64")),
                        "references": datasets.Sequence(datasets.Value("int64")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            ],
        )

    def _compute(self, predictions, references, recall_at=(1, 5, 10), **kwargs):
        recall_at = [recall_at] if isinstance(recall_at, int) else list(recall_at)
        if len(predictions) == 0:
            raise ValueError("retrieval_recall needs at least one query.")
        if isinstance(predictions[0], (int, np.integer)):
            ranks = np.asarray(predictions, dtype=np.int64)
            if np.any(ranks < 1) or np.any(ranks > np.asarray(references, dtype=np.int64)):
                raise ValueError("Each rank must lie in [1, gallery size] (the reference).")
        else:
            ranks = np.empty(len(predictions), dtype=np.float64)
            for query, (retrieved, relevant) in enumerate(zip(predictions, references)):
                if len(relevant) == 0:
                    raise ValueError(f"Query {query} has no relevant item.")
                hits = np.flatnonzero(np.isin(np.asarray(retrieved), np.asarray(relevant)))
                ranks[query] = hits[0] + 1 if hits.size else np.inf
                if not hits.size and len(retrieved) < max(recall_at):
                    raise ValueError(
                        f"Query {query} retrieved {len(retrieved)} items, fewer than k = {max(recall_at)}, and none "
                        "is relevant: recall cannot be decided."
                    )
        result = {f"recall@{k}": float(np.mean(ranks <= k)) for k in recall_at}
        result["num_queries"] = len(ranks)
        return result
