"""TRL as the oracle of the preference objectives: ftdist and TRL's own trainers, run for real on the same tiny Llama,
the same pairs in the same order, the same initial weights and the same optimizer, log the same losses step by step.

- DPO (sigmoid) with LoRA adapters (reference: the adapters disabled): 20 steps against `trl.DPOTrainer`, with its
  logged rewards, margin and accuracy;
- IPO (`method.dpo.loss: ipo`): 5 steps against `DPOTrainer(loss_type=["ipo"])`;
- DPO with every weight training and ftdist's precomputed reference: 10 steps against `DPOTrainer` with a frozen
  copy of the starting model as `ref_model`;
- a reward model trained in full, with a centring term: 20 steps against `trl.RewardTrainer`.

Both sides are real trainers: ftdist runs `Trainer.fit()` (what `ftdist.train` runs) and its per-step loss is
read from metrics.jsonl; TRL runs `trainer.train()`, and its per-step loss is taken from `compute_loss` unrounded
(HF's logged `loss` is rounded to 4 digits). The data order is ftdist's: the pairs of ftdist's own batch source,
batch by batch, are handed to TRL as text (the character tokenizer re-tokenizes them to the same ids, which the
tests check against the batches TRL actually trained on), read with TRL's sequential sampler.

Where TRL's defaults differ from ftdist's, TRL is set to ftdist's choice here:
- fp32 (TRL's configs default to bf16), no activation checkpointing (TRL's default is on; it changes no number);
- `max_length=None`: ftdist cuts rows to `data.seq_len` when it prepares them, and none of these rows is cut;
- EOS: both end each response with the tokenizer's EOS (TRL adds it to text that lacks it, ftdist's
  `data.add_eos`), so the text given to TRL stops before the EOS;
- padding: TRL passes an attention mask, ftdist none (its rows are right-padded, so under causal attention no
  real token sees padding); the pad token is a token of its own (<pad>), not EOS, so that a reward model pools at
  the EOS on both sides (transformers pools at the last token that is not the pad token);
- the same AdamW (torch's fused kernel, as ftdist's on CPU), betas and eps, no weight decay, a constant rate and
  the same clipping; loss averaging needs nothing: both average over the pairs of a step (one micro-batch);
- TRL's fused LM head (log-probabilities in tiles, never the whole logits) stays on: it is the same sum in fp32.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, TrainerCallback
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

from ftdist.config import load_config
from ftdist.data import build_data
from ftdist.distributed.device import pick_precision
from ftdist.distributed.env import detect_env
from ftdist.methods import method_class
from ftdist.models.char_tokenizer import build_char_tokenizer
from ftdist.models.recipe import ModelRecipe
from ftdist.trainer import Trainer
from ftdist.training.loss import IGNORE_INDEX
from ftdist.training.tracking import read_metrics

# TRL and peft read transformers' deprecated `is_gradient_checkpointing` when they wrap a model: theirs to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")

STEPS, BATCH, SEED, LR, CLIP = 20, 4, 3, 1e-2, 1.0
# Absolute, per step, on the loss and the logged metrics (fp32 on both sides). Measured: <= 2.4e-7 on the DPO and
# reward losses, 1.9e-6 on IPO's (one fp32 ulp at 25), <= 5.4e-7 on the rewards and margins.
TOLERANCE = 1e-5
WORDS = ["red", "blue", "cat", "dog", "sun", "moon", "tree", "sky", "sea", "owl"]
LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide Llama with a character tokenizer (EOS and pad tokens of their own), and 48 pairs."""
    root = tmp_path_factory.mktemp("trl-parity")
    tokenizer = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789 ?:")
    tokenizer.add_special_tokens({"eos_token": "</s>", "pad_token": "<pad>"})
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    rng = random.Random(0)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    rows = []
    for number in range(48):
        chosen, rejected = words(1, 4), words(1, 5)
        rows.append({"prompt": f"q{number}: {words(1, 4)}?", "chosen": chosen, "rejected": rejected + " no"})
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def run_config(assets: Path, run_dir: Path, method: dict, steps: int = STEPS) -> dict:
    return {
        "name": "trl-parity",
        "output_dir": str(run_dir),
        "seed": SEED,
        "precision": "fp32",
        "method": method,
        "model": {"path": str(assets / "model")},
        "data": {
            "recipe": "preference",
            "path": str(assets / "pairs.jsonl"),
            "seq_len": 48,
            "cache_dir": str(assets / "cache"),
        },
        "optim": {"name": "adamw", "lr": LR, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8},
        "schedule": {"name": "constant"},
        "train": {
            "max_steps": steps,
            "micro_batch_size": BATCH,
            "grad_accum": 1,
            "grad_clip": CLIP,
            "eval_every": 0,
            "log_every": 1,
        },
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "plots": False},
    }


class InitialStateTrainer(Trainer):
    """ftdist's trainer, unchanged, keeping a copy of the model's weights as they are before the first step."""

    def setup_model(self) -> None:
        super().setup_model()
        model = self.strategy.unwrap(self.model)
        self.initial_state = {name: value.detach().clone() for name, value in model.state_dict().items()}


def run_ftdist(config: dict) -> tuple[dict[str, torch.Tensor], list[dict], list[dict]]:
    """(initial weights, per-step logged events, the batches of the run) of a real ftdist run."""
    trainer = InitialStateTrainer(config)
    trainer.fit()
    events = [event for event in read_metrics(Path(config["output_dir"])) if "loss" in event]
    assert [event["step"] for event in events] == list(range(1, config["train"]["max_steps"] + 1))
    # The batches the run drew: a fresh batch source of the same config starts at the same place.
    _, data = build_data(load_config(config), detect_env())
    batches = [data.next_batch() for _ in range(config["train"]["max_steps"])]
    return trainer.initial_state, events, batches


def ftdist_model(config: dict, tokenizer) -> torch.nn.Module:
    """The model ftdist builds for `config` before training (Trainer.setup/setup_model on one process)."""
    cfg = load_config(config)
    torch.manual_seed(cfg.seed)
    precision = pick_precision(cfg.precision, torch.device("cpu"), None)
    return ModelRecipe.for_run(cfg, tokenizer, method_class(cfg.method.weights), precision).build()


# --- what the two sides trained on ------------------------------------------------------------------------------
def sequences(ids: torch.Tensor, labels: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """(prompt, response) token lists of ftdist's shifted rows: a row of n + 1 tokens is stored as inputs ids[:n]
    and targets ids[1:], the prompt's targets being -100."""
    out = []
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
        counted = [t for t, label in enumerate(row_labels) if label != IGNORE_INDEX]
        first, last = counted[0], counted[-1]
        whole = row_ids[: last + 1] + [row_labels[last]]
        out.append((whole[: first + 1], whole[first + 1 :]))
    return out


def ftdist_pairs(batches: list[dict]) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt, chosen, rejected) token lists of every pair, in the order ftdist trained on them."""
    pairs = []
    for batch in batches:
        chosen = sequences(batch["chosen_input_ids"], batch["chosen_labels"])
        rejected = sequences(batch["rejected_input_ids"], batch["rejected_labels"])
        for (prompt, chosen_response), (other_prompt, rejected_response) in zip(chosen, rejected):
            assert prompt == other_prompt
            pairs.append((prompt, chosen_response, rejected_response))
    return pairs


def trl_rows(pairs: list, tokenizer) -> Dataset:
    """The pairs as TRL's text rows; the EOS that ends each response is left for TRL to add."""
    rows = []
    for prompt, chosen, rejected in pairs:
        assert chosen[-1] == rejected[-1] == tokenizer.eos_token_id
        text = [tokenizer.decode(ids) for ids in (prompt, chosen[:-1], rejected[:-1])]
        rows.append(dict(zip(("prompt", "chosen", "rejected"), text)))
    return Dataset.from_list(rows)


def trl_dpo_pairs(inputs: list[dict]) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt, chosen, rejected) token lists of the batches DPOTrainer trained on."""
    pairs = []
    for batch in inputs:
        rows = []
        for ids, real, completion in zip(batch["input_ids"], batch["attention_mask"], batch["completion_mask"]):
            rows.append((ids[real.bool() & ~completion.bool()].tolist(), ids[completion.bool()].tolist()))
        half = len(rows) // 2
        for (prompt, chosen), (_, rejected) in zip(rows[:half], rows[half:]):
            pairs.append((prompt, chosen, rejected))
    return pairs


def trl_reward_sequences(inputs: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(prompt + chosen, prompt + rejected) token lists of the batches RewardTrainer trained on."""
    out = []
    for batch in inputs:
        rows = [ids[real.bool()].tolist() for ids, real in zip(batch["input_ids"], batch["attention_mask"])]
        half = len(rows) // 2
        out += list(zip(rows[:half], rows[half:]))
    return out


# --- TRL's side ----------------------------------------------------------------------------------------------------
class Recording:
    """Keeps each `compute_loss` result unrounded and the batch it came from (TRL's own computation, unchanged)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        seen = {key: value.detach().cpu().clone() for key, value in inputs.items() if torch.is_tensor(value)}
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            self.recorded.append((float((result[0] if return_outputs else result).detach()), seen))
        return result


class RecordingDPOTrainer(Recording, DPOTrainer):
    recorded: list


class RecordingRewardTrainer(Recording, RewardTrainer):
    recorded: list


class LoggedMetrics(TrainerCallback):
    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "train_runtime" not in logs:
            self.logs.append(dict(logs))


def trl_arguments(config_class, output_dir: Path, config: dict, **extra):
    """TRL's arguments matched to ftdist's `config` (a `run_config`): see the module docstring for each choice."""
    optim, train = config["optim"], config["train"]
    assert config["schedule"]["name"] == "constant" and train["grad_accum"] == 1
    return config_class(
        output_dir=str(output_dir),
        seed=config["seed"],
        max_steps=train["max_steps"],
        per_device_train_batch_size=train["micro_batch_size"],
        gradient_accumulation_steps=1,
        train_sampling_strategy="sequential",  # ftdist's order, as the dataset lists it
        learning_rate=optim["lr"],
        lr_scheduler_type="constant",
        optim="adamw_torch_fused",
        adam_beta1=optim["betas"][0],
        adam_beta2=optim["betas"][1],
        adam_epsilon=optim["eps"],
        weight_decay=optim["weight_decay"],
        max_grad_norm=train["grad_clip"],
        bf16=False,
        **no_checkpointing(config_class),
        max_length=None,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        **extra,
    )


def no_checkpointing(config_class) -> dict:
    """Activation checkpointing off (TRL's default is on; it changes no number, only the time): transformers 5.x
    renamed `gradient_checkpointing` to `activation_checkpointing`, and warns on the old name."""
    names = {field.name for field in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": False}


def assert_same_weights(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


def run_trl_dpo(assets: Path, tmp_path: Path, config: dict, initial: dict, pairs: list):
    """TRL's DPO on `pairs`, from ftdist's starting weights `initial`: (per-step losses and batches, logged metrics)."""
    method = config["method"]
    tokenizer = AutoTokenizer.from_pretrained(assets / "model")
    policy = AutoModelForCausalLM.from_pretrained(assets / "model", dtype=torch.float32)
    if method["finetuning"] == "lora":
        # TRL's reference is then the policy with its adapters disabled, as ftdist's `reference: adapters`.
        lora = method["lora"]
        options = {
            "peft_config": LoraConfig(
                r=lora["r"],
                lora_alpha=lora["alpha"],
                lora_dropout=lora["dropout"],
                target_modules=lora["target_modules"],
                task_type="CAUSAL_LM",
            )
        }
    else:
        # A frozen copy of the starting model: what ftdist's `reference: precompute` scored once before step 1.
        options = {"ref_model": AutoModelForCausalLM.from_pretrained(assets / "model", dtype=torch.float32)}
    logged = LoggedMetrics()
    trainer = RecordingDPOTrainer(
        model=policy,
        args=trl_arguments(
            DPOConfig, tmp_path / "trl", config, beta=method["dpo"]["beta"], loss_type=[method["dpo"]["loss"]]
        ),
        train_dataset=trl_rows(pairs, tokenizer),
        processing_class=tokenizer,
        callbacks=[logged],
        **options,
    )
    trainer.recorded = []
    # ftdist's starting weights: peft drew the A matrices of TRL's adapters from its own seed, so they are copied.
    trainer.model.load_state_dict(initial)
    assert_same_weights(trainer.model.state_dict(), initial)
    trainer.train()
    return trainer.recorded, logged.logs


def assert_same_losses(events: list[dict], recorded: list) -> list[float]:
    """Each step's loss within TOLERANCE of TRL's; returns ftdist's losses."""
    ours, theirs = [event["loss"] for event in events], [loss for loss, _ in recorded]
    assert len(theirs) == len(ours)
    differences = [abs(a - b) for a, b in zip(ours, theirs)]
    assert max(differences) < TOLERANCE, (max(differences), ours, theirs)
    return ours


def assert_same_metrics(events: list[dict], logs: list[dict], names: dict[str, str]) -> None:
    """Each step's metrics (ftdist's name -> TRL's) within TOLERANCE of TRL's."""
    assert len(logs) == len(events)
    for step, (event, log) in enumerate(zip(events, logs), start=1):
        for ours, theirs in names.items():
            assert abs(event[ours] - log[theirs]) < TOLERANCE, (step, ours, event, log)


DPO_METRICS = {
    "rewards_chosen": "rewards/chosen",
    "rewards_rejected": "rewards/rejected",
    "margin": "rewards/margins",
    "accuracy": "rewards/accuracies",
}


def dpo_method(finetuning: str = "lora", **dpo) -> dict:
    method = {"name": "dpo", "finetuning": finetuning, "dpo": {"beta": 0.1, "loss": "sigmoid", **dpo}}
    return {**method, "lora": LORA} if finetuning == "lora" else method


def test_dpo_lora_matches_trl_for_20_steps(assets, tmp_path):
    config = run_config(assets, tmp_path / "ftdist", dpo_method())
    initial, events, batches = run_ftdist(config)
    # ftdist's starting model is what its recipe builds from the seed: the base as saved, new adapters (their A
    # matrices drawn after `torch.manual_seed(seed)`: preparing the data draws nothing from torch's generator).
    tokenizer = AutoTokenizer.from_pretrained(assets / "model")
    assert_same_weights(ftdist_model(config, tokenizer).state_dict(), initial)
    pairs = ftdist_pairs(batches)
    recorded, logs = run_trl_dpo(assets, tmp_path, config, initial, pairs)

    assert trl_dpo_pairs([seen for _, seen in recorded]) == pairs  # the same tokens, prompt masks and order
    losses = assert_same_losses(events, recorded)
    assert losses[-1] < losses[0] - 0.05  # the adapters learn: not 20 flat steps at log 2
    assert_same_metrics(events, logs, DPO_METRICS)
    assert any(0 < event["accuracy"] < 1 for event in events)  # the accuracies compared are not only 0 and 1


def test_ipo_matches_trl(assets, tmp_path):
    config = run_config(assets, tmp_path / "ftdist", dpo_method(loss="ipo"), steps=5)
    initial, events, batches = run_ftdist(config)
    recorded, logs = run_trl_dpo(assets, tmp_path, config, initial, ftdist_pairs(batches))
    losses = assert_same_losses(events, recorded)
    assert losses[0] == pytest.approx(25.0)  # (0 - 1 / (2 beta))^2 at the start; the later steps test the rest
    assert_same_metrics(events, logs, DPO_METRICS)


def test_dpo_full_with_precomputed_reference_matches_trl(assets, tmp_path):
    """Every weight trains, and the reference scores come from ftdist's table written before step 1; TRL scores
    the same pairs with a frozen copy of the starting model at every step."""
    config = run_config(assets, tmp_path / "ftdist", dpo_method("full", reference="precompute"), steps=10)
    config["optim"]["lr"] = 1e-3
    initial, events, batches = run_ftdist(config)
    recorded, logs = run_trl_dpo(assets, tmp_path, config, initial, ftdist_pairs(batches))
    losses = assert_same_losses(events, recorded)
    assert losses[-1] < losses[0] - 0.05
    # At step 1 the policy is the reference: TRL's rewards are exactly 0 (one model, the same batch), ftdist's are
    # its table's rounding against this batch's forward (~1e-7, the table's batches were trimmed to other widths),
    # so "chosen > rejected" is a coin toss there; the rewards and margin are compared, the accuracy from step 2.
    assert_same_metrics(events[:1], logs[:1], {k: v for k, v in DPO_METRICS.items() if k != "accuracy"})
    assert_same_metrics(events[1:], logs[1:], DPO_METRICS)


def test_reward_model_full_matches_trl_for_20_steps(assets, tmp_path):
    coefficient = 0.01  # TRL's center_rewards_coefficient, on both sides, so that term is compared too
    method = {"name": "reward", "finetuning": "full", "reward": {"center_rewards_coefficient": coefficient}}
    config = run_config(assets, tmp_path / "ftdist", method)
    config["optim"]["lr"] = 1e-3
    initial, events, batches = run_ftdist(config)
    tokenizer = AutoTokenizer.from_pretrained(assets / "model")
    # TRL trains the model ftdist builds: the causal LM's weights with a new score head drawn from the seed.
    model = ftdist_model(config, tokenizer)
    assert_same_weights(model.state_dict(), initial)
    pairs = ftdist_pairs(batches)
    logged = LoggedMetrics()
    trainer = RecordingRewardTrainer(
        model=model,
        args=trl_arguments(RewardConfig, tmp_path / "trl", config, center_rewards_coefficient=coefficient),
        train_dataset=trl_rows(pairs, tokenizer),
        processing_class=tokenizer,
        callbacks=[logged],
    )
    trainer.recorded = []
    trainer.train()

    expected = [(prompt + chosen, prompt + rejected) for prompt, chosen, rejected in pairs]
    assert trl_reward_sequences([seen for _, seen in trainer.recorded]) == expected
    losses = assert_same_losses(events, trainer.recorded)
    assert losses[-1] < losses[0] - 0.05
    assert_same_metrics(events, logged.logs, {"margin": "margin", "accuracy": "accuracy"})
