# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Mean reciprocal rank and Hits@k, as an offline `evaluate` module (`load_metric("ranking_mrr_hits")`)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Mean reciprocal rank (MRR), mean rank and Hits@k of ranking tasks such as link prediction: for each query, the rank
r of the correct answer among the candidates; MRR = mean(1 / r), Hits@k = mean(r <= k).

Ties count against the model: the rank of the answer is the number of candidates scored at least as high as it
(itself included).

Two input forms are accepted:
- scores: `predictions` are the scores of every candidate (one list per query; give filtered-out candidates `-inf`),
  `references` the index of the correct candidate;
- ranks: `predictions` are the 1-based ranks, already computed (e.g. filtered ranks over a large entity set),
  `references` the number of candidates each was ranked among.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]` or `list[int]`):
        Per query, the score of every candidate, or the 1-based rank of the correct one.
    references (`list[int]`):
        Per query, the index of the correct candidate (scores form) or the number of candidates (ranks form).
    hits_at (`int` or `list[int]`, *optional*, defaults to `(1, 3, 10)`):
        The values of k of Hits@k. Any other keyword argument is ignored (`evaluate.combine` forwards every keyword
        to every module).

Returns:
    `dict`: `mrr`, `mean_rank`, `hits@{k}` for each k, and `num_queries`.

Examples:
    >>> metric = evaluate.load("src/knowledge_clip/metrics/ranking_mrr_hits")
    >>> metric.compute(predictions=[1, 2, 4], references=[10, 10, 10], hits_at=[1, 3])
    {'mrr': 0.5833333333333334, 'mean_rank': 2.3333333333333335, 'hits@1': 0.3333333333333333, 'hits@3': 0.6666666666666666, 'num_queries': 3}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RankingMrrHits(evaluate.Metric):
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

    def _compute(self, predictions, references, hits_at=(1, 3, 10), **kwargs):
        hits_at = [hits_at] if isinstance(hits_at, int) else list(hits_at)
        references = np.asarray(references, dtype=np.int64)
        if len(references) == 0:
            raise ValueError("ranking_mrr_hits needs at least one query.")
        if isinstance(predictions[0], (int, np.integer)):
            ranks = np.asarray(predictions, dtype=np.int64)
            if np.any(ranks < 1) or np.any(ranks > references):
                raise ValueError("Each rank must lie in [1, number of candidates] (the reference).")
        else:
            ranks = np.empty(len(references), dtype=np.int64)
            for query, (scores, answer) in enumerate(zip(predictions, references)):
                scores = np.asarray(scores, dtype=np.float64)
                if not 0 <= answer < len(scores):
                    raise ValueError(
                        f"Query {query}: answer index {answer} is not among its {len(scores)} candidates."
                    )
                ranks[query] = np.sum(scores >= scores[answer])
        result = {"mrr": float(np.mean(1.0 / ranks)), "mean_rank": float(np.mean(ranks))}
        result |= {f"hits@{k}": float(np.mean(ranks <= k)) for k in hits_at}
        result["num_queries"] = len(ranks)
        return result
