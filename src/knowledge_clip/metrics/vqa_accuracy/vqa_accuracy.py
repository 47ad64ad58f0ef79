# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""VQA accuracy, as the official VQA evaluator computes it, as an offline `evaluate` module.

`knowledge_clip.evaluation.load_metric("vqa_accuracy")`. `evaluate.load` copies this file alone, so it imports nothing
from the package; the package imports `normalize_answer` and `answer_accuracy` from here, so the rules live in one
place.
"""

import re
from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
VQA accuracy (Antol et al., 2015; VQA v2, Goyal et al., 2017), with the rules of the official evaluator
(GT-Vision-Lab/VQA, `PythonEvaluationTools/vqaEvaluation/vqaEval.py`, class `VQAEval`).

Per question, with its 10 human answers:
1. The prediction has newlines and tabs replaced by spaces, is stripped, and is normalised (`normalize_answer`):
   punctuation removed or turned into spaces, lower-cased, number words `none`/`zero`..`ten` turned into digits,
   the articles `a`, `an`, `the` dropped, missing apostrophes of contractions restored (`dont` -> `don’t`, with the
   evaluator's typographic apostrophe).
2. Only when the 10 human answers are not all identical are they normalised, and then only by the punctuation step
   (the evaluator relies on the published answers being lower-cased already).
3. Accuracy = the mean, over the 10 human answers, of `min(1, #(the other 9 answers equal to the prediction) / 3)`:
   a prediction that 1, 2, 3 or 4+ of the humans gave scores 0.3, 0.6, 0.9 or 1.0.

The result is in [0, 1]; the official evaluator prints percentages (x100, rounded to 2 decimals).
`accuracy_per_answer_type` averages each question's accuracy per answer type; the official per-type figures average
only the last leave-one-out term of each question (its `acc` variable after the loop), which we do not reproduce.
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
    >>> metric.compute(predictions=["two"], references=[["2"] * 3 + ["3"] * 7])
    {'accuracy': 0.9, 'num_examples': 1}
"""

_CITATION = """
@inproceedings{antol2015vqa, title={VQA: Visual Question Answering}, author={Antol, Stanislaw and Agrawal, Aishwarya
and Lu, Jiasen and Mitchell, Margaret and Batra, Dhruv and Zitnick, C. Lawrence and Parikh, Devi},
booktitle={ICCV}, year={2015}}
"""

# The evaluator's tables. Its contraction values use the typographic apostrophe ’ except for five entries, and a few
# keys are themselves odd (e.g. "somebody’d" -> "somebodyd"); they are kept as published, since they decide matches.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn’t’ve", "couldnt’ve": "couldn’t’ve", "didnt": "didn’t", "doesnt": "doesn’t",
    "dont": "don’t", "hadnt": "hadn’t", "hadnt’ve": "hadn’t’ve", "hadn'tve": "hadn’t’ve", "hasnt": "hasn’t",
    "havent": "haven’t", "hed": "he’d", "hed’ve": "he’d’ve", "he’dve": "he’d’ve", "hes": "he’s", "howd": "how’d",
    "howll": "how’ll", "hows": "how’s", "Id’ve": "I’d’ve", "I’dve": "I’d’ve", "Im": "I’m", "Ive": "I’ve",
    "isnt": "isn’t", "itd": "it’d", "itd’ve": "it’d’ve", "it’dve": "it’d’ve", "itll": "it’ll", "let’s": "let’s",
    "maam": "ma’am", "mightnt": "mightn’t", "mightnt’ve": "mightn’t’ve", "mightn’tve": "mightn’t’ve",
    "mightve": "might’ve", "mustnt": "mustn’t", "mustve": "must’ve", "neednt": "needn’t", "notve": "not’ve",
    "oclock": "o’clock", "oughtnt": "oughtn’t", "ow’s’at": "’ow’s’at", "’ows’at": "’ow’s’at", "’ow’sat": "’ow’s’at",
    "shant": "shan’t", "shed’ve": "she’d’ve", "she’dve": "she’d’ve", "she’s": "she’s", "shouldve": "should’ve",
    "shouldnt": "shouldn’t", "shouldnt’ve": "shouldn’t’ve", "shouldn’tve": "shouldn’t’ve",
    "somebody’d": "somebodyd", "somebodyd’ve": "somebody’d’ve", "somebody’dve": "somebody’d’ve",
    "somebodyll": "somebody’ll", "somebodys": "somebody’s", "someoned": "someone’d", "someoned’ve": "someone’d’ve",
    "someone’dve": "someone’d’ve", "someonell": "someone’ll", "someones": "someone’s", "somethingd": "something’d",
    "somethingd’ve": "something’d’ve", "something’dve": "something’d’ve", "somethingll": "something’ll",
    "thats": "that’s", "thered": "there’d", "thered’ve": "there’d’ve", "there’dve": "there’d’ve",
    "therere": "there’re", "theres": "there’s", "theyd": "they’d", "theyd’ve": "they’d’ve", "they’dve": "they’d’ve",
    "theyll": "they’ll", "theyre": "they’re", "theyve": "they’ve", "twas": "’twas", "wasnt": "wasn’t",
    "wed’ve": "we’d’ve", "we’dve": "we’d’ve", "weve": "we've", "werent": "weren’t", "whatll": "what’ll",
    "whatre": "what’re", "whats": "what’s", "whatve": "what’ve", "whens": "when’s", "whered": "where’d",
    "wheres": "where's", "whereve": "where’ve", "whod": "who’d", "whod’ve": "who’d’ve", "who’dve": "who’d’ve",
    "wholl": "who’ll", "whos": "who’s", "whove": "who've", "whyll": "why’ll", "whyre": "why’re", "whys": "why’s",
    "wont": "won’t", "wouldve": "would’ve", "wouldnt": "wouldn’t", "wouldnt’ve": "wouldn’t’ve",
    "wouldn’tve": "wouldn’t’ve", "yall": "y’all", "yall’ll": "y’all’ll", "y’allll": "y’all’ll",
    "yall’d’ve": "y’all’d’ve", "y’alld’ve": "y’all’d’ve", "y’all’dve": "y’all’d’ve", "youd": "you’d",
    "youd’ve": "you’d’ve", "you’dve": "you’d’ve", "youll": "you’ll", "youre": "you’re", "youve": "you’ve",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = [";", ":", "/", "'", "[", "]", '"', "(", ")", "=", "+", "\\", "_", ">", "<", "@", "`", ",", "?"]
# The evaluator's period pattern is written `(?!<=\d)(\.)(?!\d)`: its first group is a negative *lookahead* for the
# text "<=" + digit (a typo for a lookbehind), so in effect it removes every period that no digit follows ("3.5" keeps
# its period, "2." loses it). It also passes `re.UNICODE` (= 32) where `sub` takes `count`, so at most 32 periods go.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_MAX_REMOVED = int(re.UNICODE)
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(\,)(\d)")


def _process_punctuation(text: str) -> str:
    # The conditions read the input text, the replacements accumulate on the output (as in the evaluator): a mark
    # beside a space, or any text holding a digit-comma-digit, loses its marks; otherwise a mark becomes a space.
    out = text
    drop_marks = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in _PUNCTUATION:
        if drop_marks or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIOD_MAX_REMOVED)


def _process_digits_and_articles(text: str) -> str:
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """
    The official normalisation of a predicted answer: whitespace cleaned, punctuation processed, lower-cased, number
    words to digits, articles dropped, contractions restored.

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
        prediction (`str`): The predicted answer (normalised here).
        human_answers (`Sequence[str]`): The human answers as published (10 in VQA v2).

    Returns:
        `float` in [0, 1]: the mean over the human answers of `min(1, #(other answers equal to the prediction) / 3)`.
    """
    if len(human_answers) == 0:
        raise ValueError("answer_accuracy needs at least one human answer.")
    predicted = normalize_answer(prediction)
    answers = list(human_answers)
    if len(set(answers)) > 1:
        answers = [_process_punctuation(answer) for answer in answers]
    matches = sum(answer == predicted for answer in answers)
    # Leaving out one answer removes one match exactly when that answer itself matches.
    left_out_scores = [min(1.0, (matches - (answer == predicted)) / 3) for answer in answers]
    return sum(left_out_scores) / len(left_out_scores)


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
        scores = np.array([answer_accuracy(p, answers) for p, answers in zip(predictions, references)])
        result = {"accuracy": float(scores.mean()), "num_examples": len(scores)}
        if answer_types is not None:
            if len(answer_types) != len(scores):
                raise ValueError(f"answer_types has {len(answer_types)} entries for {len(scores)} questions.")
            types = np.asarray(answer_types)
            result["accuracy_per_answer_type"] = {
                str(kind): float(scores[types == kind].mean()) for kind in sorted(set(answer_types))
            }
        return result
