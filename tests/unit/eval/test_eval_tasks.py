"""`ftdist eval` on tiny models built from config: every task, batched generation, and the bad-input errors."""

from __future__ import annotations

import json

import pytest
import torch
from eval_helpers import save_tiny_lm, save_tiny_reward_model, write_jsonl

from ftdist.cli import main
from ftdist.config.eval import EvalTaskConfig, GenerationConfig
from ftdist.eval.api import evaluate
from ftdist.generate import generate, generate_batch
from ftdist.responses import cut_response
from ftdist.run_folder import load_trained

BIBLE = "builtin:bibleqa_dev.jsonl"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny") / "lm")


def _eval(*args: str) -> int:
    return main(["eval", *args, "--no-progress"])


def _summary(out) -> dict:
    return json.loads(out.with_suffix(".json").read_text())["results"]


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]


def test_batched_generation_equals_one_prompt_at_a_time(tiny):
    model, tokenizer, _ = load_trained(tiny)
    prompts = ["Q: Who?\nA:", "Q: What was David's occupation before he became king?\nA:", "SELECT"]
    greedy = GenerationConfig(max_new_tokens=10, temperature=0)
    batched = generate_batch(model, tokenizer, prompts, greedy)
    assert batched == [generate_batch(model, tokenizer, [p], greedy)[0] for p in prompts]
    assert batched == [generate(model, tokenizer, p, greedy)[len(p) :] for p in prompts]  # char tokenizer
    sampled = GenerationConfig(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=5)
    assert generate_batch(model, tokenizer, prompts, sampled) == generate_batch(model, tokenizer, prompts, sampled)


def test_stopping_early_gives_the_same_cut_responses(tiny):
    model, tokenizer, _ = load_trained(tiny)
    prompts = ["Q: Who?\nA:", "SELECT", "SELECT name FROM", "Q: What?\nA:"]
    for settings in (GenerationConfig(max_new_tokens=40, temperature=0),
                     GenerationConfig(max_new_tokens=40, temperature=1.0, top_p=0.9, seed=3)):  # fmt: skip
        for stop in (["\n"], [" ", "E"], ["\n\n", "e"]):
            full = generate_batch(model, tokenizer, prompts, settings)
            early = generate_batch(model, tokenizer, prompts, settings, stop=stop)
            assert [cut_response(t, stop) for t in early] == [cut_response(t, stop) for t in full], stop
            assert sum(map(len, early)) <= sum(map(len, full))


def test_qa_with_a_few_shot_prefix_records_rows_and_settings(tiny, tmp_path, capsys):
    out = tmp_path / "qa"
    assert _eval(str(tiny), "--task", "qa", "--data", BIBLE, "--prefix-file", "builtin:bible_qa_prefix.txt",
                 "--limit", "6", "--max-new-tokens", "5", "--batch-size", "4", "--out", str(out)) == 0  # fmt: skip
    assert "lenient" in capsys.readouterr().out
    result = _summary(out)["qa"]
    assert result["n"] == 6 and set(result["metrics"]) == {"lenient", "empty_responses"}
    assert result["settings"]["temperature"] == 0.0 and result["settings"]["max_new_tokens"] == 5
    assert result["settings"]["prefix_file"] == "builtin:bible_qa_prefix.txt"
    rows = _rows(out)
    assert [r["index"] for r in rows] == list(range(6)) and rows[0]["answer"] == "Shepherd"
    assert all({"question", "response", "score", "correct"} <= set(r) for r in rows)


def test_exact_and_token_f1_scoring(tiny, tmp_path):
    for scoring in ("exact", "token_f1"):
        out = tmp_path / scoring
        assert _eval(str(tiny), "--task", "qa", "--data", BIBLE, "--limit", "2", "--scoring", scoring,
                     "--max-new-tokens", "3", "--out", str(out)) == 0  # fmt: skip
        assert scoring in _summary(out)["qa"]["metrics"]


def test_sql_checks_generated_queries_against_spider_schemas(tiny, tmp_path):
    data = write_jsonl(tmp_path / "sql.jsonl", [
        {"db_id": "concert_singer", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
        {"db_id": "pets_1", "question": "How many pets?", "query": "SELECT count(*) FROM pets"},
    ])  # fmt: skip
    out = tmp_path / "sql"
    assert _eval(str(tiny), "--task", "sql", "--data", str(data), "--max-new-tokens", "6", "--out", str(out)) == 0
    result = _summary(out)["sql"]
    assert set(result["metrics"]) == {"valid", "exact_match"}
    assert all(r["valid"] is (r["error"] is None) for r in _rows(out))  # random model: errors recorded per row


def test_questions_and_perplexity_on_a_file(tiny, tmp_path):
    out = tmp_path / "questions"
    assert _eval(str(tiny), "--task", "questions", "--max-new-tokens", "4", "--out", str(out)) == 0
    rows = _rows(out)
    assert len(rows) == 14 and {r["kind"] for r in rows} == {"general knowledge", "code", "reasoning", "maths"}
    text = tmp_path / "held_out.txt"
    text.write_text("SELECT name FROM singer WHERE age > 20\n" * 20)
    out = tmp_path / "ppl"
    assert _eval(str(tiny), "--task", "perplexity", "--data", str(text), "--seq-len", "64", "--out", str(out)) == 0
    metrics = _summary(out)["perplexity"]["metrics"]
    assert metrics["tokens"] == len(text.read_text()) - 1  # char-level: every token after the first counts once
    assert metrics["perplexity"] == pytest.approx(torch.tensor(metrics["nats_per_token"]).exp().item(), rel=1e-5)


def test_score_with_a_reward_model_built_from_config(tiny, tmp_path):
    reward = save_tiny_reward_model(tmp_path / "reward")
    out = tmp_path / "score"
    assert _eval(str(tiny), "--task", "score", "--reward-model", str(reward), "--limit", "4",
                 "--max-new-tokens", "4", "--out", str(out)) == 0  # fmt: skip
    rows = _rows(out)
    assert len(rows) == 4 and all(isinstance(r["reward"], float) for r in rows)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer_tokenizer = AutoTokenizer.from_pretrained(reward)
    scorer = AutoModelForSequenceClassification.from_pretrained(reward).eval()
    pair = scorer_tokenizer(rows[0]["question"], rows[0]["response"], return_tensors="pt")
    assert scorer(**pair).logits[0, 0].item() == pytest.approx(rows[0]["reward"], abs=1e-4)  # padding changes nothing


def test_evaluate_api_equals_the_command(tiny, tmp_path):
    model, tokenizer, _ = load_trained(tiny)
    config = EvalTaskConfig(task="qa", path=BIBLE, limit=3, max_new_tokens=4)
    (result, rows), = evaluate(model, tokenizer, [config], torch.device("cpu"), progress=False).values()  # fmt: skip
    out = tmp_path / "qa"
    assert (
        _eval(str(tiny), "--task", "qa", "--data", BIBLE, "--limit", "3", "--max-new-tokens", "4", "--out", str(out))
        == 0
    )
    assert [r["response"] for r in _rows(out)] == [r["response"] for r in rows]


# --- bad input ----------------------------------------------------------------------------------------------
def test_unknown_task_suggests_the_closest(tiny, capsys):
    assert _eval(str(tiny), "--task", "perplexty") == 2
    assert "did you mean 'perplexity'" in capsys.readouterr().err


def test_qa_file_missing_a_field_names_file_and_line(tiny, tmp_path, capsys):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Who?", "answer": "Daniel"}, {"question": "What?"}])
    assert _eval(str(tiny), "--task", "qa", "--data", str(data)) == 2
    err = capsys.readouterr().err
    assert f"{data}, line 2: missing field 'answer'" in err and "Traceback" not in err


def test_sql_without_a_schema_for_the_database(tiny, tmp_path, capsys):
    data = write_jsonl(tmp_path / "sql.jsonl", [{"db_id": "no_such_db", "question": "q", "query": "SELECT 1"}])
    assert _eval(str(tiny), "--task", "sql", "--data", str(data)) == 2
    assert "line 1: db_id 'no_such_db' has no schema" in capsys.readouterr().err
    assert _eval(str(tiny), "--task", "sql", "--data", str(data), "--schemas", str(tmp_path / "missing.json")) == 2
    assert "schemas=" in capsys.readouterr().err


def test_run_folder_without_a_model(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: run\n")
    assert _eval(str(run), "--task", "questions") == 2
    assert "no model yet" in capsys.readouterr().err
    assert _eval(str(tmp_path / "nothing"), "--task", "questions") == 2
    assert "does not exist" in capsys.readouterr().err
