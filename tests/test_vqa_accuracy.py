"""VQA accuracy against hand cases of each official rule and a literal reading of the official formula."""

import random

import pytest

from knowledge_clip.evaluation import load_metric
from knowledge_clip.metrics.vqa_accuracy.vqa_accuracy import _process_punctuation, answer_accuracy, normalize_answer


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Two dogs.", "2 dogs"),  # lower-cased, number word to digit, final period removed
        ("3.5", "3.5"),  # a period followed by a digit stays
        ("the red circle", "red circle"),  # articles dropped
        ("An apple", "apple"),
        ("None", "0"),  # the evaluator maps "none" to "0" as well
        ("dont", "don’t"),  # contraction restored with the evaluator's typographic apostrophe
        ("left, right", "left right"),  # a mark beside a space is removed
        ("red/blue", "red blue"),  # a mark between letters becomes a space
        ("1,000", "1000"),  # a digit-comma-digit anywhere removes every mark
        ("yes!", "yes!"),  # "!" is not among the evaluator's punctuation marks
        ("\tyes\n", "yes"),  # newlines and tabs are spaces, then stripped
        ("." * 40, "." * 8),  # the evaluator's `sub(..., re.UNICODE)` removes at most 32 periods
    ],
)
def test_normalize_answer_follows_each_official_rule(raw, normalized):
    assert normalize_answer(raw) == normalized


@pytest.mark.parametrize(("matching", "accuracy"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_accuracy_by_number_of_matching_humans(matching, accuracy):
    answers = ["blue"] * matching + ["green"] * (10 - matching)
    assert answer_accuracy("blue", answers) == pytest.approx(accuracy)


def test_human_answers_are_normalized_only_when_they_differ():
    # All identical: the human answers are compared as published, so "yes." never matches the normalised "yes".
    assert answer_accuracy("yes", ["yes."] * 10) == 0.0
    # Not all identical: their punctuation is processed first, and nine of ten now match.
    assert answer_accuracy("yes", ["yes."] * 9 + ["no"]) == 1.0
    # Only punctuation: the evaluator does not lower-case human answers.
    assert answer_accuracy("yes", ["Yes"] * 9 + ["no"]) == 0.0


def _official_reference(prediction: str, human_answers: list[str]) -> float:
    """The official formula read literally: for each human answer, count matches among the other nine."""
    predicted = normalize_answer(prediction)
    answers = [_process_punctuation(a) for a in human_answers] if len(set(human_answers)) > 1 else human_answers
    per_answer = []
    for left_out in range(len(answers)):
        others = answers[:left_out] + answers[left_out + 1 :]
        per_answer.append(min(1.0, len([a for a in others if a == predicted]) / 3))
    return sum(per_answer) / len(per_answer)


def test_accuracy_equals_a_literal_reading_of_the_official_formula():
    rng = random.Random(0)
    pool = ["2", "two", "Two.", "yes", "yes.", "no", "red circle", "the red circle", "dont", "don’t", "3.5", "1,000"]
    for _ in range(300):
        answers = [rng.choice(pool[: rng.randint(1, len(pool))]) for _ in range(10)]
        prediction = rng.choice(pool)
        assert answer_accuracy(prediction, answers) == pytest.approx(_official_reference(prediction, answers))


def test_evaluate_module_offline_equals_the_functions():
    metric = load_metric("vqa_accuracy")
    predictions = ["two", "yes", "red"]
    references = [["2"] * 3 + ["3"] * 7, ["no"] * 10, ["red"] * 10]
    result = metric.compute(
        predictions=predictions, references=references, answer_types=["number", "yes/no", "other"], top_k=[1]
    )
    expected = [answer_accuracy(p, r) for p, r in zip(predictions, references)]
    assert result["accuracy"] == pytest.approx(sum(expected) / 3)
    assert result["num_examples"] == 3
    assert result["accuracy_per_answer_type"] == pytest.approx({"number": 0.9, "yes/no": 0.0, "other": 1.0})
    with pytest.raises(ValueError, match="at least one"):
        metric.compute(predictions=[], references=[])
