# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""VQA accuracy as the official evaluator computes it, as an offline `evaluate` module (`load_metric("vqa_accuracy")`).

`evaluate.load` copies this file alone, so it imports nothing from the package; the package imports `normalize_answer`
and `answer_accuracy` from here, so the rules live in one place.
"""

import re
from collections.abc import Sequence

import datasets
import evaluate

_DESCRIPTION = """
VQA accuracy (Antol et al., 2015; VQA v2, Goyal et al., 2017) with the rules of the official evaluator:
GT-Vision-Lab/VQA, `PythonEvaluationTools/vqaEvaluation/vqaEval.py`, class `VQAEval`, at commit `a013f00` (2021, the
newest, "Fixed processing answers bug").

Per question, with its human answers (10 in VQA v2):
1. The prediction and every human answer have newlines and tabs replaced by spaces and are stripped.
2. Only when the human answers are then not all identical (`len(set(answers)) > 1`) are the human answers and the
   prediction normalised (`normalize_answer`): punctuation removed or turned into spaces, periods that no digit
   follows removed, lower-cased, number words `none`/`zero`..`ten` turned into digits, the articles `a`, `an`, `the`
   dropped, missing apostrophes of contractions restored (`dont` -> `don't`). When all human answers are identical,
   the prediction must equal them as it is: `"Yes"` or `"yes."` scores 0 against ten `"yes"`.
3. Accuracy = the mean, over the human answers, of `min(1, #(the other answers equal to the prediction) / 3)`: a
   prediction that 0, 1, 2, 3 or 4+ of 10 humans gave scores 0, 0.3, 0.6, 0.9 or 1.0.

`accuracy` is the mean over questions, in [0, 1]; the official evaluator reports percentages (x100, rounded to 2
decimals). `accuracy_per_answer_type` is the same mean per answer type, as the evaluator's `perAnswerType`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`):
        The predicted answer of each question.
    references (`list[list[str]]`):
        The human answers of each question (10 in VQA v2), as published (`annotations[*].answers[*].answer`).
    answer_types (`list[str]`, *optional*):
        Each question's `answer_type` ("yes/no", "number", "other"), for `accuracy_per_answer_type`. Any other keyword
        argument is ignored (`evaluate.combine` forwards every keyword to every module).

Returns:
    `dict`: `accuracy` in [0, 1], `num_examples`, and `accuracy_per_answer_type` when `answer_types` are given.

Examples:
    >>> metric = evaluate.load("src/knowledge_clip/metrics/vqa_accuracy")
    >>> metric.compute(predictions=["Two."], references=[["2"] * 3 + ["3"] * 7])
    {'accuracy': 0.9, 'num_examples': 1}
"""

_CITATION = """
@inproceedings{antol2015vqa,
  title={VQA: Visual Question Answering},
  author={Antol, Stanislaw and Agrawal, Aishwarya and Lu, Jiasen and Mitchell, Margaret and Batra, Dhruv and
          Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={ICCV},
  year={2015}
}
"""

# The evaluator's tables, as published at a013f00 (ASCII apostrophes since its 2016 fix). Its lookup runs after
# lower-casing, so the four capitalised keys ("Im", "Ive", "Id've", "I'dve") can never match; they are kept anyway so
# that the table stays the published one.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd", "howll": "how'll",
    "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've",
    "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've",
    "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# The evaluator's marks (since 3b6ef32, July 2015). Not among them, so kept as they are: the apostrophe (the
# contractions need it), ":", "*", "#", "&", "%", "$", "~", "^", "|"; the period has its own rule below.
_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'  # one mark per character
# The evaluator compiles its patterns without re.UNICODE in Python 2, where `\d` is then [0-9] only; Python 3's `\d`
# would also match other scripts' digits, hence [0-9].
_DIGIT_COMMA_DIGIT = re.compile(r"[0-9],[0-9]")
# The evaluator writes `(?!<=\d)(\.)(?!\d)`: a negative lookahead for the text "<=" + digit (a typo for a lookbehind)
# that never matches where a period stands, so the pattern removes every period that no digit follows: "3.5" keeps
# its period, "2." and "a.b" lose theirs. It passes `re.UNICODE` (= 32) where `sub` takes `count`, so at most the
# first 32 such periods are removed.
_PERIOD = re.compile(r"\.(?![0-9])")
_MAX_PERIODS_REMOVED = 32


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _process_punctuation(text: str) -> str:
    # Every mark is judged on the text as it came in, not as the replacements leave it: a mark that stands beside a
    # space somewhere, or any mark of a text that holds a digit-comma-digit ("1,000"), is deleted; otherwise the
    # mark becomes a space ("red/blue" -> "red blue").
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        deleted = delete_all or f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if deleted else " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def _process_digits_and_articles(text: str) -> str:
    # split() + join also collapses the spaces the punctuation step may have left.
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def normalize_answer(answer: str) -> str:
    """
    The official normalisation of an answer: newlines and tabs to spaces, stripped, punctuation processed
    (`processPunctuation`), then lower-cased, number words to digits, articles dropped and contractions restored
    (`processDigitArticle`).

    `answer_accuracy` applies it only when a question's human answers are not all identical, as the evaluator does.

    Args:
        answer (`str`): A raw answer.

    Returns:
        `str`: the normalised answer, e.g. `normalize_answer("Two dogs.") == "2 dogs"`.
    """
    return _process_digits_and_articles(_process_punctuation(_clean_whitespace(answer)))


def answer_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """
    The official accuracy of one predicted answer against a question's human answers.

    Args:
        prediction (`str`): The predicted answer, raw (cleaned and, where the rule says so, normalised here).
        human_answers (`Sequence[str]`): The human answers as published (10 in VQA v2).

    Returns:
        `float` in [0, 1]: the mean over the human answers of `min(1, #(other answers equal to the prediction) / 3)`,
        after normalising the prediction and the answers only if the (whitespace-cleaned) answers are not all
        identical.
    """
    if len(human_answers) == 0:
        raise ValueError("answer_accuracy needs at least one human answer.")
    predicted = _clean_whitespace(prediction)
    answers = [_clean_whitespace(answer) for answer in human_answers]
    if len(set(answers)) > 1:
        answers = [normalize_answer(answer) for answer in answers]
        predicted = normalize_answer(predicted)
    matches = sum(answer == predicted for answer in answers)
    # The evaluator leaves out one answer record at a time (records differ by their answer_id even when their texts
    # agree), so the left-out answer takes exactly one match away when it matches itself. Summed in order and divided
    # by the count, as it does, so the floats are the evaluator's bit for bit.
    per_answer = [min(1, (matches - (answer == predicted)) / 3) for answer in answers]
    return sum(per_answer) / len(per_answer)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VqaAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, answer_types=None, **kwargs):
        if len(predictions) == 0:
            raise ValueError("vqa_accuracy needs at least one question.")
        scores = [answer_accuracy(prediction, answers) for prediction, answers in zip(predictions, references)]
        # Plain sums over questions in order, as the evaluator's `setAccuracy`.
        result = {"accuracy": sum(scores) / len(scores), "num_examples": len(scores)}
        if answer_types is not None:
            if len(answer_types) != len(scores):
                raise ValueError(f"answer_types has {len(answer_types)} entries for {len(scores)} questions.")
            by_type = {}
            for kind, score in zip(answer_types, scores):
                by_type.setdefault(str(kind), []).append(score)
            result["accuracy_per_answer_type"] = {
                kind: sum(values) / len(values) for kind, values in sorted(by_type.items())
            }
        return result
