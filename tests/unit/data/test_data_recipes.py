"""Each recipe on a hand-checked example: the exact text that is masked (⟦ ⟧) and the exact text that trains.

The char tokenizer makes one token per character, so a mask can be checked character by character.
"""

from __future__ import annotations

import numpy as np
from data_helpers import config, tokenize, write_jsonl

from ftdist.data.card import marked
from ftdist.data.recipes.keywords import rake
from ftdist.data.tokenize import IGNORE


def marked_examples(cfg) -> list[str]:
    tokenizer, tokenized, _ = tokenize(cfg)
    return [marked(tokenizer, ids, labels) for ids, labels in tokenized.examples]


def test_instruction_masks_the_prompt(tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [{"instruction": "add", "input": "1 2", "output": "3"}, {"instruction": "hi", "input": "", "output": "yo"}],
    )
    cfg = config(
        tmp_path,
        recipe="instruction",
        path=str(path),
        seq_len=64,
        template="I: {instruction} {input}\nR: ",
        template_no_input="I: {instruction}\nR: ",
    )
    assert marked_examples(cfg) == ["⟦I: add 1 2\nR: ⟧3", "⟦I: hi\nR: ⟧yo"]
    tokenizer, tokenized, _ = tokenize(cfg)
    ids, labels = tokenized.examples[1]
    prompt = len("I: hi\nR: ")
    assert (labels[:prompt] == IGNORE).all() and (labels[prompt:] == ids[prompt:]).all()


def test_instruction_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"task": "hi", "response": "yo"}])
    cfg = config(
        tmp_path,
        recipe="instruction",
        path=str(path),
        seq_len=64,
        columns={"instruction": "task", "output": "response"},
        template_no_input="{instruction}=",
    )
    assert marked_examples(cfg) == ["⟦hi=⟧yo"]


def test_qa_with_few_shot_prefix(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "2+2?", "answer": "4"}])
    cfg = config(
        tmp_path, recipe="qa", path=str(path), seq_len=128, qa={"few_shot": [{"question": "1+1?", "answer": "2"}]}
    )
    assert marked_examples(cfg) == ["⟦Question: 1+1?\nAnswer: 2\n\nQuestion: 2+2?\nAnswer: ⟧4"]


def test_chat_trains_only_assistant_turns_with_role_map(tmp_path):
    messages = [
        {"role": "human", "content": "hi"},
        {"role": "bot", "content": "hello"},
        {"role": "human", "content": "bye"},
        {"role": "bot", "content": "ciao"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": messages}])
    cfg = config(
        tmp_path, recipe="chat", path=str(path), seq_len=256, chat={"role_map": {"human": "user", "bot": "assistant"}}
    )
    user = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    assert marked_examples(cfg) == [
        "⟦" + user.format("hi") + "⟧hello<|im_end|>\n⟦" + user.format("bye") + "⟧ciao<|im_end|>\n"
    ]


def test_rake_keywords_on_a_hand_checked_sentence():
    # Runs between stopwords: "packing puts examples" (each word degree 3 -> 9), then single words scoring 1
    # each ("sequence", "compute", "spent", "padding"), ties broken alphabetically.
    assert rake("Packing puts examples into one sequence, so no compute is spent on padding.", 3) == [
        "packing puts examples",
        "compute",
        "padding",
    ]


def test_keywords_recipe(tmp_path):
    path = write_jsonl(tmp_path / "k.jsonl", [{"text": "Packing puts examples into one sequence."}])
    cfg = config(
        tmp_path,
        recipe="keywords",
        path=str(path),
        seq_len=256,
        keywords={"top_k": 2, "min_words": 3, "template": "{text}\nK: "},
    )
    assert marked_examples(cfg) == ["⟦Packing puts examples into one sequence.\nK: ⟧packing puts examples, sequence"]


def test_headings_use_the_heading_path_as_prompt(tmp_path):
    cfg = config(tmp_path, recipe="headings", path="builtin:guide.md", seq_len=256)
    samples = marked_examples(cfg)
    assert samples[0] == "⟦Fine-tuning guide\n\n⟧A short guide written for ftdist's tests and examples."
    assert (
        samples[3] == "⟦Fine-tuning guide > Preparing data > Masking\n\n⟧"
        "Only the response counts in the loss. Prompt tokens are labelled -100."
    )
    assert len(samples) == 6


def test_code_pairs_functions_with_docs_python_and_java(tmp_path):
    cfg = config(tmp_path, recipe="code", path="builtin:code_tree", seq_len=512)
    _, _, skipped = tokenize(cfg)
    samples = marked_examples(cfg)
    assert samples[0] == (
        "⟦Java function `increment`: Adds one to the count and returns the new value.\n⟧"
        "public int increment() {\n    count += 1;\n    return count;\n}"
    )
    assert "⟦Java function `reset`: Sets the count back to zero.\n⟧public void reset() {" in samples[1]
    assert samples[3] == (
        "⟦Python function `area`: Return the area of a rectangle.\n⟧"
        'def area(width, height):\n    """Return the area of a rectangle."""\n    return width * height'
    )
    assert samples[4].startswith("⟦Python function `distance`: Distance between two points in the plane.\n⟧def ")
    assert len(samples) == 6  # increment, reset, describe, area, distance, Circle.circumference
    assert sum(skipped.values()) == 3  # get, undocumented, Circle.__init__


def test_code_raw_and_text_chunking_with_overlap(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("abcde\nfghij\n")
    cfg = config(tmp_path, recipe="text", path=str(path), seq_len=4, chunk_overlap=1)
    tokenizer, tokenized, _ = tokenize(cfg)
    chunks = [tokenizer.decode(ids) for ids, _ in tokenized.examples]
    assert chunks == ["abcde", "de\nfg", "fghij"]  # one document per file; stride seq_len - overlap = 3
    # In later chunks the overlapped token ("e", then "g") is context only: it was trained in the chunk before.
    assert [int((labels == IGNORE).sum()) for _, labels in tokenized.examples] == [0, 1, 1]
    assert tokenized.examples[1][1][1] == IGNORE
    raw = config(tmp_path, recipe="code", path="builtin:code_tree", seq_len=64, code={"mode": "raw"})
    tokenizer, tokenized, _ = tokenize(raw)
    text = "".join(tokenizer.decode(ids[:-1]) for ids, _ in tokenized.examples[:-1])
    assert text.startswith("# file: java/Counter.java\n// A counter")
    assert all(len(ids) == 65 for ids, _ in tokenized.examples[:-1])  # full chunks, no padding
    assert all((labels != IGNORE).all() for _, labels in tokenized.examples)
    assert np.concatenate([ids[:-1] for ids, _ in tokenized.examples]).size > 0
