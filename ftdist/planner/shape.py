"""`ModelShape`: the few numbers of an architecture that memory depends on, and the parameter counts derived
from them. Nothing is loaded: a 70B model is a dozen integers.

Counts are per module family (embeddings, the linears of one decoder layer, norms, biases) because the memory
model needs more than the total: LoRA adapts named linears, QLoRA quantizes only the layer linears, and ZeRO-3
gathers the largest single parameter at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Module names per family: (name, in_features, out_features) are filled in by `ModelShape.layer_linears`.
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GPT2_LINEARS = ("c_attn", "attn.c_proj", "c_fc", "mlp.c_proj")
FALCON_LINEARS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")

# peft's default LoRA targets per family (what `target_modules` unset means in ftdist/methods/lora.py).
DEFAULT_LORA_TARGETS = {
    "llama": ("q_proj", "v_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "falcon": ("query_key_value",),
}


@dataclass(frozen=True)
class ModelShape:
    """One decoder-only transformer. `family` decides module names and norm/bias layout:
    `llama` (RMSNorm, SwiGLU, no biases), `gpt2` (LayerNorm, GELU MLP, biases, learned positions),
    `falcon` (LayerNorm, GELU MLP, biases, fused QKV; Bloom has the same layout)."""

    name: str
    family: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tied: bool
    positions: int = 0  # learned position embeddings (gpt2); 0 for rotary / ALiBi
    embedding_norm: bool = False  # Bloom's LayerNorm right after the embedding
    file_bytes: int = 2  # bytes per parameter in the checkpoint files (config.json's dtype; hub models are 16-bit)
    source: str = ""  # where the figures came from: a config.json path or "catalogue"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def gated(self) -> bool:
        return self.family == "llama"

    @property
    def biased(self) -> bool:
        return self.family != "llama"

    def layer_linears(self) -> list[tuple[str, int, int]]:
        """(module name, in_features, out_features) of every linear in one decoder layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        if self.family == "llama":
            shapes = ((h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h))
            return [(n, a, b) for n, (a, b) in zip(LLAMA_LINEARS, shapes)]
        names = GPT2_LINEARS if self.family == "gpt2" else FALCON_LINEARS
        return [(names[0], h, h + 2 * kv), (names[1], h, h), (names[2], h, i), (names[3], i, h)]

    # --- counts --------------------------------------------------------------------------------------------
    def layer_linear_params(self) -> int:
        """Weights (and biases) of one layer's linears: what QLoRA quantizes."""
        return sum(a * b for _, a, b in self.layer_linears())

    def layer_params(self) -> int:
        norms = 2 * self.hidden * (1 if self.family == "llama" else 2)  # RMSNorm weight | LayerNorm weight+bias
        biases = sum(b for _, _, b in self.layer_linears()) if self.biased else 0
        return self.layer_linear_params() + biases + norms

    def embedding_params(self) -> int:
        extra = 2 * self.hidden if self.embedding_norm else 0
        return self.vocab * self.hidden + self.positions * self.hidden + extra

    def head_params(self) -> int:
        """The untied output projection (0 when tied to the embedding)."""
        return 0 if self.tied else self.vocab * self.hidden

    def final_norm_params(self) -> int:
        return self.hidden * (1 if self.family == "llama" else 2)

    def total_params(self) -> int:
        return (
            self.embedding_params() + self.layers * self.layer_params() + self.final_norm_params() + self.head_params()
        )

    def quantizable_params(self) -> int:
        """Weights bitsandbytes stores in 4/8 bits: every layer linear (not embeddings, head, norms, biases)."""
        return self.layers * self.layer_linear_params()

    def largest_param(self) -> int:
        """The largest single parameter tensor (ZeRO-3's `largest_layer_params`: the embedding here)."""
        biggest_linear = max(a * b for _, a, b in self.layer_linears())
        return max(self.vocab * self.hidden, biggest_linear)

    def lora_params(self, rank: int, targets: tuple[str, ...] | str | None) -> int:
        """Trainable adapter parameters: r * (in + out) per targeted linear per layer (A and B matrices)."""
        chosen = self.lora_targets(targets)
        per_layer = sum(rank * (a + b) for name, a, b in self.layer_linears() if name in chosen)
        return self.layers * per_layer

    def lora_targets(self, targets: tuple[str, ...] | str | None) -> set[str]:
        """The layer linears a `target_modules` setting selects (suffix match, as peft does)."""
        names = [name for name, _, _ in self.layer_linears()]
        if targets == "all-linear":
            return set(names)
        wanted = tuple(targets) if targets else DEFAULT_LORA_TARGETS[self.family]
        return {
            name
            for name in names
            if any(name == t or name.endswith("." + t) or name.split(".")[-1] == t for t in wanted)
        }
