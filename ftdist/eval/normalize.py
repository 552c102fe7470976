"""Answer normalization and the QA scorers: lenient, exact, token F1 and substring.

Normalization (SQuAD's, which most QA papers use): lower-case; replace punctuation with spaces; drop the
articles a, an, the; collapse runs of whitespace. Punctuation becomes a space rather than vanishing so that
"Jesus' mother" and "Jesus mother" agree and "end-of-days" splits into words.

`lenient` is the Bible study's rule: correct when the normalized ground truth appears in the normalized
response. It matches on whole words: "Paris" is not found in "Parisian", and "Ur" is not found in "Ruth's
journey" (the study's plain substring test would have counted both). A lenient test that counted a wrong word
would reward a model for emitting long, varied text; whole-word matching keeps the rule's intent. `substring`
is the study's literal rule, for reproducing its numbers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """Lower-case, punctuation -> space, articles dropped, whitespace collapsed."""
    text = _PUNCTUATION.sub(" ", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def lenient(response: str, truth: str) -> float:
    """1.0 if the normalized truth occurs in the normalized response as whole words, else 0.0."""
    needle, hay = normalize(truth), normalize(response)
    if not needle:
        return 0.0
    return 1.0 if f" {needle} " in f" {hay} " else 0.0


def exact(response: str, truth: str) -> float:
    """1.0 if response and truth are equal after normalization."""
    return 1.0 if normalize(response) == normalize(truth) and normalize(truth) else 0.0


def token_f1(response: str, truth: str) -> float:
    """Harmonic mean of token precision and recall between the normalized response and truth."""
    predicted, gold = normalize(response).split(), normalize(truth).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def substring(response: str, truth: str) -> float:
    """The study's literal rule: the lower-cased truth is a substring of the lower-cased response."""
    return 1.0 if truth.strip() and truth.strip().lower() in response.lower() else 0.0


# Keyed by the names `eval.tasks[].scoring` accepts (ftdist.config.eval.SCORING_NAMES; a test holds them equal).
SCORERS: dict[str, Callable[[str, str], float]] = {
    "lenient": lenient,
    "exact": exact,
    "token_f1": token_f1,
    "substring": substring,
}
