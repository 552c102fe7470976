"""DPO, KTO and reward models end to end on a tiny Llama: the first step's loss is the value the objective
defines when policy and reference agree, the loss falls, the reference costs no second copy of the model, a
resumed run continues exactly, and a reward model loads and scores in plain transformers."""

from __future__ import annotations

import math

import pytest
import torch
from preference_helpers import preference_config, write_pairs, write_unpaired
from safetensors.torch import load_file

import ftdist
from ftdist.config import load_config
from ftdist.training import chunked_loss
from ftdist.training.tracking import read_metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preference-data")
    return {"pairs": write_pairs(folder / "pairs.jsonl"), "unpaired": write_unpaired(folder / "unpaired.jsonl")}


def losses(run_dir) -> list[float]:
    return [event["loss"] for event in read_metrics(run_dir) if "loss" in event]


def last_eval(run_dir) -> dict:
    return [event for event in read_metrics(run_dir) if "val_loss" in event][-1]


@pytest.mark.parametrize("finetuning", ["full", "lora"])
def test_dpo_starts_at_log_2_and_learns_the_preference(data, tmp_path, finetuning):
    method = {"name": "dpo", "finetuning": finetuning}
    lr = ["optim.lr=3e-2", "method.lora.target_modules=all-linear"] if finetuning == "lora" else []
    ftdist.train(preference_config(tmp_path / "run", data["pairs"], method), lr)
    curve = losses(tmp_path / "run")
    # Step 1's loss is computed before any update: policy == reference, so every pair's loss is -log sigmoid(0).
    assert curve[0] == pytest.approx(math.log(2), abs=1e-6)
    assert sum(curve[-4:]) / 4 < math.log(2) - 0.1, curve
    final = last_eval(tmp_path / "run")
    assert final["val_accuracy"] == 1.0 and final["val_margin"] > 0 and final["val_rewards_chosen"] > 0
    # Full fine-tuning keeps the starting model's scores beside the run; LoRA disables its adapters instead.
    assert (tmp_path / "run" / "reference" / "scores.npz").exists() == (finetuning == "full")


def test_dpo_on_a_4bit_base_uses_the_quantized_model_as_its_own_reference(data, tmp_path):
    method = {"name": "dpo", "finetuning": "qlora", "lora": {"dropout": 0.0}}
    ftdist.train(preference_config(tmp_path / "run", data["pairs"], method), ["train.max_steps=6", "optim.lr=1e-2"])
    curve = losses(tmp_path / "run")
    assert curve[0] == pytest.approx(math.log(2), abs=1e-6) and all(map(math.isfinite, curve))
    assert not (tmp_path / "run" / "reference").exists()  # adapters disabled: no scores, no copy
    assert (tmp_path / "run" / "final" / "adapter_config.json").exists()


def test_ipo_starts_at_its_own_fixed_point(data, tmp_path):
    method = {"name": "dpo", "dpo": {"loss": "ipo", "beta": 0.5}}
    ftdist.train(preference_config(tmp_path / "run", data["pairs"], method), ["train.max_steps=4"])
    assert losses(tmp_path / "run")[0] == pytest.approx((1 / (2 * 0.5)) ** 2, abs=1e-6)  # (0 - 1/(2 beta))^2


@pytest.mark.parametrize("name", ["dpo", "kto"])
def test_the_chunked_loss_gives_the_same_preference_losses(data, tmp_path, monkeypatch, name):
    """Through the chunked head (ftdist/training/chunked_loss.py) each response's log-probability is summed
    chunk by chunk: the same losses as from the whole logits, step by step."""
    chunks = []
    real = chunked_loss._chunk_token_losses
    monkeypatch.setattr(chunked_loss, "_chunk_token_losses", lambda *args: chunks.append(1) or real(*args))
    source = data["pairs"] if name == "dpo" else data["unpaired"]
    curves, used = [], []
    for chunked in (False, True):
        run = tmp_path / f"chunked-{chunked}"
        ftdist.train(
            preference_config(run, source, {"name": name}), ["train.max_steps=4", f"train.chunked_loss={chunked}"]
        )
        curves.append(losses(run))
        used.append(len(chunks))
    assert used[0] == 0 and used[1] > 0, used  # the plain run never went through the head; the chunked one did
    assert curves[1] == pytest.approx(curves[0], abs=1e-5) and len(curves[0]) == 4


def test_kto_starts_at_one_half_and_learns(data, tmp_path):
    ftdist.train(preference_config(tmp_path / "run", data["unpaired"], {"name": "kto"}))
    curve = losses(tmp_path / "run")
    assert curve[0] == pytest.approx(0.5, abs=1e-6)  # 1 - sigmoid(beta * (0 - 0)) for every row
    assert sum(curve[-4:]) / 4 < 0.5 - 0.05, curve


def test_dpo_resumes_exactly_with_its_precomputed_reference(data, tmp_path):
    config = preference_config(tmp_path / "whole", data["pairs"], {"name": "dpo"})
    ftdist.train(config)
    split = dict(config, output_dir=str(tmp_path / "split"))
    ftdist.train(split, ["train.max_steps=12"])  # stops at 12 with its reference scores written ...
    ftdist.train(split)  # ... and resumes from step-12: the starting model is gone, the scores are read back
    whole, resumed = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("whole", "split"))
    for name, tensor in whole.items():
        assert torch.equal(tensor, resumed[name]), name
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")


def test_a_resume_without_the_reference_scores_is_refused(data, tmp_path):
    config = preference_config(tmp_path / "run", data["pairs"], {"name": "dpo"})
    ftdist.train(config, ["train.max_steps=12"])
    (tmp_path / "run" / "reference" / "scores.npz").unlink()
    with pytest.raises(ftdist.errors.FtdistError, match="reference.*missing.*computed by the starting model"):
        ftdist.train(config)


def test_a_reward_model_trains_merges_and_scores_in_plain_transformers(data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from ftdist.eval.tasks.score import RewardScorer
    from ftdist.export import merge

    method = {"name": "reward", "finetuning": "lora"}
    ftdist.train(preference_config(tmp_path / "run", data["pairs"], method), ["optim.lr=3e-2", "method.lora.r=16"])
    curve = losses(tmp_path / "run")
    assert sum(curve[-4:]) / 4 < curve[0] - 0.2, curve
    assert last_eval(tmp_path / "run")["val_accuracy"] == 1.0
    scorer = RewardScorer(tmp_path / "run", torch.device("cpu"))  # the run: adapters on their base
    prompts = ["Query 5 of table t5:"] * 2
    good, bad = scorer.score(prompts, [" good", " bad"])
    assert good > bad
    merged = merge(tmp_path / "run")
    plain = AutoModelForSequenceClassification.from_pretrained(merged)  # no ftdist, no peft
    assert plain.config.num_labels == 1
    ids = scorer.tokenizer("Query 5 of table t5: good", add_special_tokens=False)["input_ids"]
    eos = [scorer.tokenizer.eos_token_id] if scorer.tokenizer.eos_token_id is not None else []
    with torch.no_grad():
        score = float(plain(input_ids=torch.tensor([ids + eos])).logits[0, 0])
    assert score == pytest.approx(good, abs=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["data.recipe=text"], "method: dpo trains on preference rows, but data.recipe=text"),
        (["method.name=full", "method.finetuning=null"], "data.recipe: preference gives chosen/rejected rows"),
        (["method.finetuning=full", "method.dpo.reference=adapters"], "reference=adapters needs adapters"),
        (["method.name=lora", "method.finetuning=lora", "data.recipe=text"], "method.finetuning is set but"),
        (["method.kto.beta=0.2"], "method.kto is set but method.name=dpo"),
        (["method.name=reward", "eval.prompts=[hello]"], "method: reward trains a scorer"),
    ],
)
def test_mismatched_preference_settings_are_named_with_their_fix(data, tmp_path, change, message):
    config = preference_config(tmp_path / "run", data["pairs"], {"name": "dpo"})
    with pytest.raises(ftdist.errors.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config, change)


@pytest.mark.parametrize("name", ["dpo", "kto", "reward"])
def test_doctor_runs_two_steps_of_each_preference_method(name, tmp_path, monkeypatch):
    from conftest import REPO
    from ftdist.distributed.env import detect_env
    from ftdist.doctor import tiny_run_row

    monkeypatch.chdir(tmp_path)  # the shipped pairs are prepared into ./.ftdist_cache
    config = load_config(REPO / "cluster_configs" / "dpo_smollm2_sql.yaml", [f"method.name={name}", "method.dpo=null"])
    row = tiny_run_row(config, detect_env())
    assert row.ok and f"{name} x single, tiny llama: 2 steps" in row.result, row
