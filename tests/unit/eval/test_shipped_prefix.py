"""The shipped few-shot prefix is the Bible study's preamble, and none of its examples is a question the model is
evaluated (or trained) on: a worked example that is also a test question makes every score with it contaminated."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

ASSETS = Path(str(resources.files("ftdist") / "assets"))


def normalized(question: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", question.lower()).strip()


def prefix_examples() -> list[tuple[str, str]]:
    text = (ASSETS / "bible_qa_prefix.txt").read_text()
    return re.findall(r"^Q: (.*)\nA: (.*)$", text, flags=re.MULTILINE)


def test_the_prefix_is_the_study_preamble() -> None:
    text = (ASSETS / "bible_qa_prefix.txt").read_text()
    assert text.startswith("The following are questions and answers about the Bible.\n\n")
    assert prefix_examples() == [
        ("Who was the first man?", "Adam"),
        ("What was special about Samson?", "He was very strong"),
        ("Where was Jesus born?", "Bethlehem"),
    ]
    assert text.endswith("A: Bethlehem\n\n")  # the prompt's own "Q: {question}\nA:" follows a blank line


def test_no_shipped_few_shot_example_is_an_evaluation_or_training_question() -> None:
    asked = set()
    for name in ("bibleqa_dev.jsonl", "bible_qa_sample.jsonl", "eval_questions.jsonl"):
        for line in (ASSETS / name).read_text().splitlines():
            if line.strip():
                asked.add(normalized(json.loads(line)["question"]))
    shots = {normalized(question) for question, _ in prefix_examples()}
    assert len(asked) > 400 and len(shots) == 3
    assert not shots & asked, shots & asked
