"""VQA accuracy against hand cases of each official rule and a literal transcription of the official evaluator."""

import os
import random
import re

import evaluate
import pytest

from knowledge_clip.evaluation import load_metric
from knowledge_clip.evaluation.metrics import metric_path
from knowledge_clip.metrics.vqa_accuracy.vqa_accuracy import _CONTRACTIONS, answer_accuracy, normalize_answer


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Two dogs.", "2 dogs"),  # lower-cased, number word to digit, final period removed
        ("TEN", "10"),
        ("none", "0"),  # the evaluator maps "none" to "0" as well
        ("3.5", "3.5"),  # a period followed by a digit stays
        (".5", ".5"),
        ("2.", "2"),  # ... any other period goes, even between letters
        ("a.b", "ab"),
        ("." * 40 + "x", "." * 8 + "x"),  # `sub(..., re.UNICODE)`: at most 32 periods removed
        ("the red circle", "red circle"),  # articles dropped
        ("An apple a day", "apple day"),
        ("dont", "don't"),  # contraction restored
        ("whats", "what's"),
        ("don't", "don't"),  # the apostrophe is not a punctuation mark
        ("Im", "im"),  # the table's capitalised keys never match: lookup after lower-casing
        ("left, right", "left right"),  # a mark beside a space is removed
        ("red/blue", "red blue"),  # a mark between letters becomes a space
        ("x-ray", "x ray"),
        ("yes!", "yes"),  # "!" becomes a space, then the split drops it
        ("1,000", "1000"),  # a digit-comma-digit ...
        ("1,000 (approx)", "1000 approx"),  # ... removes every mark of the text
        ("3:00", "3:00"),  # ":" is not among the marks
        ("\tyes\n", "yes"),  # newlines and tabs are spaces, then stripped
    ],
)
def test_normalize_answer_follows_each_official_rule(raw, normalized):
    assert normalize_answer(raw) == normalized


@pytest.mark.parametrize(
    ("matching", "accuracy"),
    # k of 10 matching: (k * min(1, (k-1)/3) + (10-k) * min(1, k/3)) / 10, e.g. 3 -> (3 * 2/3 + 7 * 1) / 10.
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (9, 1.0), (10, 1.0)],
)
def test_accuracy_by_number_of_matching_humans(matching, accuracy):
    answers = ["blue"] * matching + ["green"] * (10 - matching)
    assert answer_accuracy("blue", answers) == pytest.approx(accuracy)
    if len(set(answers)) > 1:  # the answers differ, so the prediction is normalised
        assert answer_accuracy("The Blue.", answers) == pytest.approx(accuracy)


def test_nothing_is_normalized_when_all_human_answers_are_identical():
    assert answer_accuracy("yes", ["yes"] * 10) == 1.0
    assert answer_accuracy(" yes\n", ["yes"] * 10) == 1.0  # the whitespace step always runs
    assert answer_accuracy("Yes", ["yes"] * 10) == 0.0
    assert answer_accuracy("yes.", ["yes"] * 10) == 0.0
    # Identical once their whitespace is cleaned: still no normalisation.
    assert answer_accuracy("Yes", ["yes"] * 9 + ["yes\t"]) == 0.0


def test_prediction_and_human_answers_are_normalized_when_the_answers_differ():
    assert answer_accuracy("Yes", ["yes"] * 9 + ["no"]) == 1.0
    assert answer_accuracy("yes", ["Yes."] * 9 + ["no"]) == 1.0
    assert answer_accuracy("2", ["Two"] * 3 + ["three"] * 7) == pytest.approx(0.9)  # digits and articles, too
    with pytest.raises(ValueError, match="at least one human answer"):
        answer_accuracy("yes", [])


# --- A literal transcription of the official evaluator (GT-Vision-Lab/VQA at a013f00,
# PythonEvaluationTools/vqaEvaluation/vqaEval.py): its lists, its regular expressions as written (ASCII digits, as
# Python 2 compiled them), its per-question loop over answer records. Only the 120-entry contraction table is shared
# with the module; it was compared once entry by entry with the official file, and the hand cases pin some entries.
OFFICIAL_PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
OFFICIAL_MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
OFFICIAL_MANUAL_MAP.update({"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"})
OFFICIAL_ARTICLES = ["a", "an", "the"]
OFFICIAL_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
OFFICIAL_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)", re.ASCII)


def official_process_punctuation(in_text):
    out_text = in_text
    for p in OFFICIAL_PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (re.search(OFFICIAL_COMMA_STRIP, in_text) is not None):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return OFFICIAL_PERIOD_STRIP.sub("", out_text, count=int(re.UNICODE))


def official_process_digit_article(in_text):
    out_text = []
    for word in in_text.lower().split():
        word = OFFICIAL_MANUAL_MAP.get(word, word)
        if word not in OFFICIAL_ARTICLES:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in _CONTRACTIONS:
            out_text[word_id] = _CONTRACTIONS[word]
    return " ".join(out_text)


def official_question_accuracy(res_answer, gt_answer_texts):
    answers = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(gt_answer_texts)]
    for ans_dic in answers:
        ans_dic["answer"] = ans_dic["answer"].replace("\n", " ").replace("\t", " ").strip()
    res_ans = res_answer.replace("\n", " ").replace("\t", " ").strip()
    gt_answers = [ans["answer"] for ans in answers]
    if len(set(gt_answers)) > 1:
        for ans_dic in answers:
            ans_dic["answer"] = official_process_digit_article(official_process_punctuation(ans_dic["answer"]))
        res_ans = official_process_digit_article(official_process_punctuation(res_ans))
    gt_acc = []
    for gt_ans_datum in answers:
        other_gt_ans = [item for item in answers if item != gt_ans_datum]
        matching_ans = [item for item in other_gt_ans if item["answer"] == res_ans]
        gt_acc.append(min(1, float(len(matching_ans)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


TOKENS = ["2", "two", "Two", "none", "10", "ten", "yes", "Yes", "no", "the", "a", "An", "dont", "don't", "whats"]
TOKENS += ["3.5", ".5", "1,000", "1", "red", "blue", "x"]
JOINERS = [" ", "  ", "", ",", ", ", " ,", ".", ". ", "/", "-", " - ", "!", "?", "(", ")", ":", ";", "'", '"', "\n"]
JOINERS += ["\t", "{", "}", "[", "]", "=", "+", "\\", "_", ">", "<", "@", "`", "*"]


def random_answer(rng):
    text = rng.choice(TOKENS)
    for _ in range(rng.randint(0, 3)):
        text += rng.choice(JOINERS) + rng.choice(TOKENS)
    if rng.random() < 0.2:
        text = rng.choice([" ", "\n", "\t", ""]) + text + rng.choice([" ", "\n", ".", "?", ""])
    if rng.random() < 0.02:
        text = "." * rng.randint(30, 40) + text
    return text


def random_cases(seed, count):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        pool = [random_answer(rng) for _ in range(rng.randint(1, 4))]
        answers = [rng.choice(pool) for _ in range(10)]
        if rng.random() < 0.15:
            answers = [answers[0]] * 10
        prediction = rng.choice(pool) if rng.random() < 0.5 else random_answer(rng)
        cases.append((prediction, answers, rng.choice(["yes/no", "number", "other"])))
    return cases


def test_the_transcription_itself_on_hand_cases():
    # Guards the reference: if it were wrong the same way as the module, the comparison below would prove nothing.
    assert official_question_accuracy("Two.", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    assert official_question_accuracy("Yes", ["yes"] * 10) == 0.0
    assert official_process_digit_article(official_process_punctuation("The 1,000 (dogs).")) == "1000 dogs"


def test_accuracy_equals_the_official_transcription_on_random_cases():
    cases = random_cases(seed=0, count=500)
    accuracies = [answer_accuracy(prediction, answers) for prediction, answers, _ in cases]
    # Bit for bit: the same floats summed in the same order.
    assert accuracies == [official_question_accuracy(prediction, answers) for prediction, answers, _ in cases]
    # The cases reach every accuracy level and both branches of the all-identical rule.
    assert {round(a, 6) for a in accuracies} >= {0.0, 0.3, 0.6, 0.9, 1.0}
    assert any(len(set(a)) == 1 for _, a, _ in cases) and any(len(set(a)) > 1 for _, a, _ in cases)
    for prediction, answers, _ in cases[:100]:
        for text in [prediction, *answers]:
            cleaned = text.replace("\n", " ").replace("\t", " ").strip()
            assert normalize_answer(text) == official_process_digit_article(official_process_punctuation(cleaned))


def test_evaluate_module_offline_equals_the_functions():
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest.py before evaluate is imported
    metric = evaluate.load(str(metric_path("vqa_accuracy")))
    cases = random_cases(seed=1, count=300)
    predictions, references, answer_types = (list(column) for column in zip(*cases))
    # top_k: a keyword meant for another module, as evaluate.combine would forward it.
    result = metric.compute(predictions=predictions, references=references, answer_types=answer_types, top_k=[1])
    scores = [answer_accuracy(p, r) for p, r in zip(predictions, references)]
    assert result["accuracy"] == sum(scores) / len(scores)
    assert result["num_examples"] == 300
    for kind in ("yes/no", "number", "other"):
        of_kind = [s for s, t in zip(scores, answer_types) if t == kind]
        assert result["accuracy_per_answer_type"][kind] == pytest.approx(sum(of_kind) / len(of_kind))
    # The official evaluator reports round(100 * mean, 2).
    official = [official_question_accuracy(p, r) for p, r in zip(predictions, references)]
    assert round(100 * result["accuracy"], 2) == round(100 * float(sum(official)) / len(official), 2)


def test_load_metric_hand_case_and_errors():
    metric = load_metric("vqa_accuracy")
    result = metric.compute(
        predictions=["Two.", "yes", "red"],
        references=[["2"] * 3 + ["3"] * 7, ["no"] * 10, ["red"] * 10],
        answer_types=["number", "yes/no", "other"],
    )
    assert result["accuracy"] == pytest.approx((0.9 + 0.0 + 1.0) / 3)
    assert result["accuracy_per_answer_type"] == pytest.approx({"number": 0.9, "yes/no": 0.0, "other": 1.0})
    assert "accuracy_per_answer_type" not in metric.compute(predictions=["red"], references=[["red"] * 10])
    with pytest.raises(ValueError, match="at least one question"):
        metric.compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="answer_types has 1 entries for 2 questions"):
        metric.compute(predictions=["a", "b"], references=[["a"], ["b"]], answer_types=["other"])
