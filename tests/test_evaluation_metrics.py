"""The packaged `evaluate` modules against hand-computed cases, scikit-learn and literal loops."""

import glob
import os

import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from knowledge_clip.evaluation import METRIC_NAMES, load_metric
from knowledge_clip.evaluation.metrics import METRICS_DIR, count_at_least


@pytest.fixture(scope="module")
def metrics():
    return {name: load_metric(name) for name in METRIC_NAMES}


def test_every_metric_is_shipped_as_package_data():
    # setup.py ships `metrics/*/*.py`; evaluate.load(folder) needs `<name>/<name>.py`.
    shipped = sorted(glob.glob(os.path.join(METRICS_DIR, "*", "*.py")))
    assert [os.path.relpath(p, METRICS_DIR) for p in shipped] == [f"{n}/{n}.py" for n in sorted(METRIC_NAMES)]
    with pytest.raises(ValueError, match="Unknown metric"):
        load_metric("accuracy")


def test_topk_accuracy_matches_scikit_learn(metrics):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 12))
    labels = rng.integers(0, 12, size=200)
    result = metrics["topk_accuracy"].compute(predictions=scores.tolist(), references=labels.tolist(), top_k=[1, 3, 5])
    for k in (1, 3, 5):
        assert result[f"top{k}_accuracy"] == pytest.approx(top_k_accuracy_score(labels, scores, k=k, labels=range(12)))
    assert result["num_examples"] == 200


def test_topk_accuracy_hand_case_ties_count_against_the_model(metrics):
    # Example 0: the true class 2 ties with class 0 -> rank 2. Example 1: true class 0 is the best -> rank 1.
    result = metrics["topk_accuracy"].compute(
        predictions=[[0.5, 0.1, 0.5], [0.9, 0.3, 0.2]], references=[2, 0], top_k=[1, 2]
    )
    assert result == {"top1_accuracy": 0.5, "top2_accuracy": 1.0, "num_examples": 2}
    constant = metrics["topk_accuracy"].compute(predictions=[[1.0] * 4] * 3, references=[0, 1, 2], top_k=1)
    assert constant["top1_accuracy"] == 0.0


def test_topk_accuracy_rank_form_equals_score_form(metrics):
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=(50, 7)), rng.integers(0, 7, size=50)
    ranks = [int(np.sum(row >= row[label])) for row, label in zip(scores, labels)]
    from_scores = metrics["topk_accuracy"].compute(predictions=scores.tolist(), references=labels.tolist())
    from_ranks = metrics["topk_accuracy"].compute(predictions=ranks, references=[7] * 50)
    assert from_scores == from_ranks
    with pytest.raises(ValueError, match="rank must lie"):
        metrics["topk_accuracy"].compute(predictions=[8], references=[7])


def test_retrieval_recall_matches_a_literal_loop(metrics):
    rng = np.random.default_rng(2)
    retrieved = [rng.permutation(30)[:10].tolist() for _ in range(40)]
    relevant = [rng.choice(30, size=rng.integers(1, 4), replace=False).tolist() for _ in range(40)]
    result = metrics["retrieval_recall"].compute(predictions=retrieved, references=relevant, recall_at=[1, 5, 10])
    for k in (1, 5, 10):
        hits = [any(item in rel for item in ret[:k]) for ret, rel in zip(retrieved, relevant)]
        assert result[f"recall@{k}"] == pytest.approx(sum(hits) / len(hits))


def test_retrieval_recall_hand_case_and_rank_form(metrics):
    result = metrics["retrieval_recall"].compute(
        predictions=[[3, 1, 2], [0, 2, 1], [5, 4, 9]], references=[[1], [1, 2], [5]], recall_at=[1, 2, 3]
    )
    assert result == {"recall@1": 1 / 3, "recall@2": 1.0, "recall@3": 1.0, "num_queries": 3}
    ranks = metrics["retrieval_recall"].compute(predictions=[2, 2, 1], references=[10, 10, 10], recall_at=[1, 2, 3])
    assert ranks == result
    with pytest.raises(ValueError, match="recall cannot be decided"):
        metrics["retrieval_recall"].compute(predictions=[[1, 2]], references=[[7]], recall_at=[5])


def test_ranking_mrr_hits_hand_case(metrics):
    result = metrics["ranking_mrr_hits"].compute(predictions=[1, 2, 4], references=[10, 10, 10], hits_at=[1, 3])
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    assert result["mean_rank"] == pytest.approx(7 / 3)
    assert result["hits@1"] == pytest.approx(1 / 3) and result["hits@3"] == pytest.approx(2 / 3)


def test_ranking_mrr_hits_score_form_with_filtered_candidates(metrics):
    # Query 0: answer 1 (0.7) is beaten by nothing -> rank 1; query 1: answer 0 ties with candidate 1 -> rank 2,
    # and the filtered candidate 2 (-inf) never counts.
    result = metrics["ranking_mrr_hits"].compute(
        predictions=[[0.1, 0.7, 0.2], [0.5, 0.5, float("-inf")]], references=[1, 0], hits_at=[1]
    )
    assert result["mrr"] == pytest.approx(0.75) and result["hits@1"] == 0.5


def test_combine_forwards_every_keyword(metrics):
    combined = evaluate.combine([load_metric("topk_accuracy"), load_metric("ranking_mrr_hits")])
    result = combined.compute(predictions=[1, 2, 4], references=[10, 10, 10], top_k=[1], hits_at=[3])
    assert result["top1_accuracy"] == pytest.approx(1 / 3) and result["hits@3"] == pytest.approx(2 / 3)


def test_count_at_least_leaves_out_excluded_entries():
    scores = torch.tensor([[0.2, 0.9, 0.5], [0.1, 0.1, 0.3]])
    excluded = torch.tensor([[False, True, False], [True, False, False]])
    assert count_at_least(scores, torch.tensor([0.5, 0.1]), excluded).tolist() == [1, 2]


def test_classification_accuracy_is_topk_top1_on_label_predictions(metrics):
    # Visual entailment (3 classes) and NLVR2 (2 classes) need no module of their own: label predictions given as
    # one-hot scores make `top1_accuracy` the plain accuracy (a wrong label leaves the true class tied at 0 with the
    # others, so its rank is > 1), and so do logits whose best class is unique.
    rng = np.random.default_rng(3)
    for num_classes in (2, 3):
        labels = rng.integers(0, num_classes, size=120)
        predicted = np.where(rng.random(120) < 0.6, labels, rng.integers(0, num_classes, size=120))
        one_hot = np.eye(num_classes)[predicted]
        result = metrics["topk_accuracy"].compute(predictions=one_hot.tolist(), references=labels.tolist(), top_k=1)
        assert result["top1_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
        logits = rng.normal(size=(120, num_classes))
        result = metrics["topk_accuracy"].compute(predictions=logits.tolist(), references=labels.tolist(), top_k=1)
        assert result["top1_accuracy"] == pytest.approx(accuracy_score(labels, logits.argmax(axis=1)))
    # Hand case: labels [entailment, neutral, contradiction, neutral] predicted [entailment, contradiction,
    # contradiction, entailment] -> 2 of 4.
    one_hot = np.eye(3)[[0, 2, 2, 0]].tolist()
    assert metrics["topk_accuracy"].compute(predictions=one_hot, references=[0, 1, 2, 1], top_k=1) == {
        "top1_accuracy": 0.5,
        "num_examples": 4,
    }
