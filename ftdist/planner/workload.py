"""`Workload`: what one training step holds in memory, read from a run config without loading anything.

It is the planner's input: the model's shape (from `model.path`'s config.json, the catalogue, or
`model.scratch`), the method, the optimizer, the precision and the batch shape. The strategy and the hardware
are varied by the planner, so they are not part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.planner.catalogue import CATALOGUE, catalogue_shape, read_config_json, shape_from_hf_config
from ftdist.planner.shape import ModelShape

CHAR_VOCAB_GUESS = 256  # a character vocabulary whose text cannot be read here: at most this many symbols


@dataclass(frozen=True)
class Workload:
    shape: ModelShape
    method: str  # pretrain | full | lora | qlora
    optimizer: str  # adamw | adamw_8bit | paged_adamw_8bit | paged_adamw_32bit | sgd
    precision: str  # auto | fp32 | bf16 | fp16 (auto resolves per hardware)
    seq_len: int
    micro_batch: int
    grad_accum: int = 1
    lora_rank: int = 8
    lora_targets: tuple[str, ...] | str | None = None
    lora_dropout: float = 0.0
    quant_bits: int = 4
    double_quant: bool = True
    sgd_momentum: float = 0.0
    optimizer_fallback: bool = False  # optim.on_unsupported: fallback (a paged optimizer runs unpaged off CUDA)
    attention: str = "sdpa"  # sdpa | eager (eager keeps the B x heads x T x T score matrix)
    param_bytes: int = 4  # bytes per stored parameter (and gradient) under single/ddp: what trains loads in fp32
    # (models.load_pretrained; LoRA's frozen base in the compute dtype, analytic.base_bytes); 2 models a 16-bit
    # load of everything, as the enterprise study's full fine-tuning scripts do
    loss_chunk: int | None = None  # tokens per chunk of the chunked loss (train.chunked_loss), None: whole logits
    # sft | dpo | kto | reward. A preference row is two sequences (micro_batch counts sequences); DPO and KTO's
    # reference is the same model (adapters disabled) or scores computed before training: no second copy;
    # a reward model's head has one output instead of the vocabulary.
    objective: str = "sft"
    reference: str | None = None  # dpo/kto: adapters | precompute (method.reference)

    @property
    def tokens(self) -> int:
        """Tokens in one micro-batch on one device."""
        return self.seq_len * self.micro_batch

    @property
    def adapters(self) -> bool:
        return self.method in ("lora", "qlora")

    def trainable_params(self) -> int:
        if self.adapters:
            return self.shape.lora_params(self.lora_rank, self.lora_targets)
        return self.shape.total_params()

    def with_method(self, method: str) -> Workload:
        """The same run under another method (for "what would fit" suggestions); QLoRA defaults as ftdist's."""
        if method == self.method:
            return self
        if method == "qlora":
            return replace(self, method=method, lora_rank=64, lora_targets="all-linear", optimizer="paged_adamw_8bit")
        return replace(self, method=method, lora_rank=self.lora_rank if self.adapters else 8)


def chunk_tokens(config: Any, vocab: int) -> int | None:
    """The run's chunked-loss tokens per chunk (None: whole logits), as the trainer installs it."""
    return config.train.loss_chunk_tokens(config.data.seq_len, vocab, config.method.sequences_per_row)


def workload_from_config(config: Any) -> Workload:
    """The workload of a `RunConfig`."""
    method = config.method
    lora = method.lora
    shape = model_shape(config)
    return Workload(
        shape=shape,
        method=method.weights,
        optimizer=config.optim.name,
        precision=config.precision,
        seq_len=config.data.seq_len,
        # A preference row is two sequences through the model: chosen and rejected (KTO: the response and
        # its KL sequence), so a micro-batch of B rows holds activations of 2B sequences.
        micro_batch=config.train.micro_batch_size * method.sequences_per_row,
        grad_accum=config.train.grad_accum,
        lora_rank=lora.r or 8,
        lora_targets=tuple(lora.target_modules) if isinstance(lora.target_modules, list) else lora.target_modules,
        lora_dropout=lora.dropout or 0.0,
        quant_bits=8 if method.quantization.load_in_8bit else 4,
        double_quant=method.quantization.double_quant,
        sgd_momentum=config.optim.momentum,
        optimizer_fallback=config.optim.on_unsupported == "fallback",
        # a reward model's head has one output: nothing to chunk
        loss_chunk=None if method.objective == "reward" else chunk_tokens(config, shape.vocab),
        objective=method.objective,
        reference=method.reference,
    )


def model_shape(config: Any) -> ModelShape:
    """`model.path`'s own config.json if it is a local folder, else the catalogue; `model.scratch` from its fields."""
    model = config.model
    if model.path is None and model.gguf_file is None:
        return scratch_shape(config)
    path = model.path or ""
    local = Path(path).expanduser()
    if local.is_dir() and (local / "config.json").is_file():
        return read_config_json(local / "config.json", path)
    for name in (path, model.gguf_file or ""):
        shape = catalogue_shape(name) if name else None
        if shape is not None:
            return shape
    hub_like = path.count("/") == 1 and not path.startswith((".", "/", "~"))  # owner/name
    looked = None if hub_like and not local.exists() else local / "config.json"
    why = f"{looked} does not exist" if looked else f"{path!r} is neither a local folder nor in the catalogue"
    raise FtdistError(
        f"cannot read the model config for model.path={path}: {why}. Point model.path at a Hugging Face folder "
        "with a config.json (the weights are not needed), or use a catalogued id: "
        f"{', '.join(sorted(CATALOGUE))}"
    )


def scratch_shape(config: Any) -> ModelShape:
    """The shape `ftdist.models.scratch` builds from `model.scratch`, with the character vocabulary counted
    from the training text when it can be read here (models/scratch.py is not imported: it pulls in
    transformers)."""
    spec = config.model.scratch
    vocab, note = _char_vocab(config)
    if spec.family == "gpt2":
        fields = dict(
            model_type="gpt2",
            n_embd=spec.n_embd,
            n_layer=spec.n_layer,
            n_head=spec.n_head,
            n_inner=spec.intermediate_size,
            n_positions=spec.max_positions or config.data.seq_len,
        )
    else:
        width = spec.intermediate_size or (int(8 * spec.n_embd / 3) + 7) // 8 * 8  # as models/scratch.py
        fields = dict(
            model_type="llama",
            hidden_size=spec.n_embd,
            num_hidden_layers=spec.n_layer,
            num_attention_heads=spec.n_head,
            num_key_value_heads=spec.n_kv_head or spec.n_head,
            intermediate_size=width,
        )
    shape = shape_from_hf_config(
        {**fields, "vocab_size": vocab, "tie_word_embeddings": spec.tie_embeddings},
        f"scratch {spec.family}",
        "model.scratch",
    )
    return replace(shape, notes=(note,) if note else ())


def _char_vocab(config: Any) -> tuple[int, str]:
    if config.model.tokenizer_source != "char":
        raise FtdistError(
            f"model.tokenizer={config.model.tokenizer} with model.scratch: the planner cannot size the vocabulary "
            "without loading the tokenizer; use tokenizer: char or plan with model.path set"
        )
    path = config.data.path or ""
    if path.startswith("builtin:"):
        path = str(Path(__file__).resolve().parent.parent / "assets" / path.removeprefix("builtin:"))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return CHAR_VOCAB_GUESS, f"vocabulary assumed {CHAR_VOCAB_GUESS} characters ({path} not readable here)"
    return len(set(text)), ""  # for JSONL the syntax characters count too: a close upper bound
