# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The package's `evaluate` modules and the rank conventions shared by every evaluation."""

from pathlib import Path

import evaluate
import torch

METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"
METRIC_NAMES = ("ranking_mrr_hits", "retrieval_recall", "topk_accuracy", "vqa_accuracy")


def metric_path(name: str) -> Path:
    """The folder of the packaged `evaluate` module `name` (one of `METRIC_NAMES`)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; the package ships {METRIC_NAMES}.")
    return METRICS_DIR / name


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """
    Loads one of the package's metrics as an `evaluate` module, offline (`evaluate.load` of its folder).

    Args:
        name (`str`): `"topk_accuracy"`, `"retrieval_recall"`, `"ranking_mrr_hits"` or `"vqa_accuracy"`.
        **kwargs: Passed to `evaluate.load` (e.g. `experiment_id`, `num_process`, `process_id`).

    Example:

    ```python
    >>> from knowledge_clip.evaluation import load_metric
    >>> load_metric("ranking_mrr_hits").compute(predictions=[1, 2, 4], references=[10, 10, 10], hits_at=[1, 3])["mrr"]
    0.5833333333333334
    ```
    """
    return evaluate.load(str(metric_path(name)), **kwargs)


def count_at_least(
    scores: torch.Tensor, thresholds: torch.Tensor, excluded: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Per row, the number of scores `>=` that row's threshold, leaving out `excluded` entries.

    This is how every rank here is counted: the rank of an answer is `1 +` the number of other (not filtered)
    candidates scored at least as high, so ties count against the model.

    Args:
        scores (`torch.Tensor` of shape `(rows, candidates)`): A block of scores.
        thresholds (`torch.Tensor` of shape `(rows,)`): The score of each row's answer.
        excluded (`torch.Tensor` of shape `(rows, candidates)`, *optional*): True for entries not to count (the
            answer itself, filtered candidates).
    """
    at_least = scores >= thresholds.unsqueeze(1)
    if excluded is not None:
        at_least &= ~excluded
    return at_least.sum(dim=1)


def unavailable(reason: str) -> dict:
    """The result of a metric the model cannot compute (e.g. link prediction for a plain `CLIPModel`)."""
    return {"available": False, "reason": reason}
