"""QA scoring and SQL checks against hand-made cases (no model)."""

from __future__ import annotations

import pytest

from ftdist.errors import FtdistError
from ftdist.eval.normalize import exact, lenient, normalize, substring, token_f1
from ftdist.eval.sql_schema import SHIPPED, check_sql, create_statements, load_schemas
from ftdist.eval.tasks.sql import normalize_sql
from ftdist.responses import cut_response, response_is_final


def test_normalize_drops_case_punctuation_articles_and_spaces():
    assert normalize("  The  Good-Shepherd! ") == "good shepherd"
    assert normalize("An apple, a day") == "apple day"


def test_case_and_punctuation_do_not_matter():
    assert lenient("DANIEL.", "Daniel") == 1.0
    assert exact("daniel!", "Daniel") == 1.0
    assert token_f1("Daniel", "daniel") == 1.0


def test_answer_embedded_in_a_longer_response():
    response = "It was Daniel, who prayed three times a day"
    assert lenient(response, "Daniel") == 1.0
    assert exact(response, "Daniel") == 0.0
    assert token_f1(response, "Daniel") == pytest.approx(2 * (1 / 8) / (1 / 8 + 1))  # 8 words once "a" goes


def test_multi_word_answer_must_appear_whole_and_in_order():
    assert lenient("He raised him from the dead.", "Raised him from the dead") == 1.0
    assert lenient("from the dead he raised him", "Raised him from the dead") == 0.0
    assert token_f1("from the dead he raised him", "Raised him from the dead") > 0.8


def test_empty_response_scores_zero_everywhere():
    for scorer in (lenient, exact, token_f1, substring):
        assert scorer("", "Daniel") == 0.0
    assert lenient("anything", "") == 0.0  # an empty ground truth never counts as found


def test_truth_inside_a_wrong_word_is_not_found_by_lenient():
    """Lenient matches whole words: 'Cain' is not in 'Cainan', 'Ur' is not in 'Ruth'. The study's literal
    substring rule (`substring`) counts both, which rewards any long response that happens to contain the letters."""
    assert lenient("Cainan", "Cain") == 0.0
    assert lenient("Ruth's journey", "Ur") == 0.0
    assert lenient("Cain, son of Adam", "Cain") == 1.0
    assert substring("Cainan", "Cain") == 1.0
    assert substring("Ruth's journey", "Ur") == 1.0


def test_cut_response_stops_at_the_first_stop_string():
    assert cut_response("  Shepherd\nQ: next question", ["\n"]) == "Shepherd"
    assert cut_response("select 1; select 2", [";", "\n"]) == "select 1"
    assert cut_response("\n\n", ["\n"]) == ""


def test_a_markdown_code_block_is_unwrapped_before_the_stops():
    # SmolLM2-Instruct answers "```sql\nSELECT ...\n```": a newline stop must not leave only the fence.
    assert cut_response("```sql\nSELECT name FROM singer\n```\nMore text", ["\n", ";"]) == "SELECT name FROM singer"
    assert cut_response("```\nselect 1; select 2```", [";"]) == "select 1"
    assert cut_response("```", ["\n"]) == ""
    assert cut_response("Use ```x``` here", ["\n"]) == "Use ```x``` here"  # only an opening fence is unwrapped


def test_sql_normalization_ignores_formatting_only():
    assert normalize_sql("SELECT  count( * ) FROM singer ;") == normalize_sql("select count(*) from singer")
    assert normalize_sql("select name from singer") != normalize_sql("select name from concert")


def test_shipped_spider_schemas_plan_real_queries_and_reject_bad_ones():
    schemas = load_schemas(SHIPPED)
    assert len(schemas) == 20 and "concert_singer" in schemas
    assert any(s.startswith('CREATE TABLE "singer"') for s in create_statements(schemas["concert_singer"]))
    assert check_sql(SHIPPED, "concert_singer", "SELECT count(*) FROM singer") is None
    assert "no such table" in check_sql(SHIPPED, "concert_singer", "SELECT * FROM singers")
    assert "no such column" in check_sql(SHIPPED, "concert_singer", "SELECT nam FROM singer")
    assert "syntax error" in check_sql(SHIPPED, "concert_singer", "SELECT FROM WHERE")
    assert check_sql(SHIPPED, "concert_singer", "") == "empty query"


def test_schema_file_that_is_not_spider_is_a_clear_error(tmp_path):
    bad = tmp_path / "tables.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(FtdistError, match="not a Spider tables.json"):
        load_schemas(str(bad))


def test_a_response_is_final_once_its_cut_cannot_change():
    assert not response_is_final("", ["\n"]) and not response_is_final("  ``", ["\n"])  # a fence may be opening
    assert not response_is_final("Shepherd", ["\n"])
    assert response_is_final("Shepherd\nQ", ["\n"]) and response_is_final("Shepherd\n", ["\n"])
    # ";" is found at 1, but "a;x" may still become "a;xyz", a stop that begins earlier and would cut to "".
    assert not response_is_final("a;x", [";", "a;xyz"])
    assert response_is_final("a;xq", [";", "a;xyz"])
    assert not response_is_final("```sql\nSELECT 1", ["\n"])  # inside a code block the newline does not stop
    assert response_is_final("```sql\nSELECT 1\n```", ["\n"]) and response_is_final("```\nSELECT 1;", [";"])
