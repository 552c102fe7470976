"""Model configs for training from scratch: the architecture is a config, the code is transformers'.

The tiny SQL GPT is a GPT-2 config: pre-norm blocks with both residuals (the paper's own block skipped the
MLP residual; this one does not), learned positions, ReLU MLP as in the paper. With 4 layers, 4 heads,
n_embd 64, context 32 and the corpus's 218 characters it has 230,016 parameters (the paper's ~0.23 M):
  token emb 218*64 + positions 32*64 + 4 blocks * (attn 4*64*64+4*64 ... ) + untied head 64*218.
Using transformers' classes means the result is a plain HF folder that every fine-tuning path can load.
"""

from __future__ import annotations

from transformers import GPT2Config, LlamaConfig, PretrainedConfig

from ftdist.config.model import ScratchModel


def scratch_model_config(spec: ScratchModel, vocab_size: int, seq_len: int) -> PretrainedConfig:
    """The transformers config for `model.scratch`, sized to the tokenizer and the data's sequence length."""
    positions = spec.max_positions or seq_len
    if spec.family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=positions,
            n_embd=spec.n_embd,
            n_layer=spec.n_layer,
            n_head=spec.n_head,
            n_inner=spec.intermediate_size,  # None -> 4 * n_embd
            activation_function=spec.activation,
            resid_pdrop=spec.dropout,
            embd_pdrop=spec.dropout,
            attn_pdrop=spec.dropout,
            tie_word_embeddings=spec.tie_embeddings,
            bos_token_id=None,
            eos_token_id=None,
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.n_embd,
        intermediate_size=spec.intermediate_size or _llama_mlp_width(spec.n_embd),
        num_hidden_layers=spec.n_layer,
        num_attention_heads=spec.n_head,
        num_key_value_heads=spec.n_kv_head or spec.n_head,
        max_position_embeddings=positions,
        attention_dropout=spec.dropout,
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def _llama_mlp_width(hidden: int) -> int:
    """SwiGLU width: 2/3 of 4*hidden, rounded up to a multiple of 8 (as Llama does with 256)."""
    width = int(8 * hidden / 3)
    return (width + 7) // 8 * 8
