"""`train:` and `checkpoint:` the loop's length, batch shape, cadence and resume policy."""

from __future__ import annotations

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt

from ftdist.config.base import Section

CHUNKED_LOSS_FROM = 1 << 26
"""Logit values of one micro-batch (256 MiB in fp32) from which `chunked_loss` is on by default. Below it the
logits are small beside the model, and one large matrix product beats several small ones."""
CHUNK_LOGITS = 1 << 24
"""Logit values one chunk of the chunked loss holds (64 MiB in fp32): 341 tokens of SmolLM2's vocabulary."""


class TrainConfig(Section):
    """Loop length, batch shape and the cadence of logging and evaluation (in optimizer steps)."""

    max_steps: PositiveInt = 5000
    """Optimizer steps to run."""
    micro_batch_size: PositiveInt = 16
    """Sequences per forward pass on each process."""
    grad_accum: PositiveInt = 1
    """Micro-batches accumulated into one optimizer step."""
    grad_clip: NonNegativeFloat = 0.0
    """Clip the global gradient norm to this value; 0 turns clipping off."""
    eval_every: NonNegativeInt = 100
    """Estimate train and val loss every N steps (and at the last step); 0 turns it off."""
    eval_batches: PositiveInt = 200
    """Batches per split in each evaluation."""
    compile: bool = False
    """`torch.compile` the model (in place, so checkpoints keep their names). The first steps pay the
    compilation, which the run reports; it pays off on long runs of larger models, rarely on a CPU."""
    log_every: PositiveInt = 10
    """Write a training event to the metrics every N steps: `loss` is the mean over those steps and
    `tokens_per_s` their average rate (as HF Trainer logs them)."""
    chunked_loss: bool | None = None
    """Compute the LM head and the cross-entropy a chunk of tokens at a time, recomputing each chunk in
    backward, so the (tokens x vocabulary) logits are never held whole (also for DPO and KTO, which sum
    each response's token log-probabilities). Unset: on where one micro-batch's
    logits would take at least CHUNKED_LOSS_FROM values (e.g. SmolLM2 at 2 x 1024 tokens, Llama-3 at any
    length), off for small vocabularies and under `compile`. The loss and gradients equal the plain ones
    within fp32 rounding."""

    def loss_chunk_tokens(self, seq_len: int, vocab: int, sequences_per_row: int = 1) -> int | None:
        """Tokens per chunk of the chunked loss, or None for the plain loss (the one rule the trainer and the
        planner share). A chunk holds about CHUNK_LOGITS logit values. `sequences_per_row`: 2 for the
        preference objectives, whose rows are pairs (`MethodConfig.sequences_per_row`)."""
        on = self.chunked_loss
        if on is None:
            logits = self.micro_batch_size * sequences_per_row * seq_len * vocab
            on = not self.compile and logits >= CHUNKED_LOSS_FROM
        return max(1, CHUNK_LOGITS // max(1, vocab)) if on else None


class CheckpointConfig(Section):
    """Resumable checkpoints under `<output_dir>/checkpoints/step-<N>/`."""

    every: NonNegativeInt = 500
    """Save every N steps and at the end; 0 writes no checkpoints (a preempted run still saves one to resume
    from). `final/` is written either way."""
    keep_last: PositiveInt = 2
    """Keep the newest K complete checkpoints and delete older ones."""
    async_save: bool | None = None
    """Copy the states to host memory while the next step's forward and backward run (its optimizer update waits
    for the copy), and write them in a background thread while training goes on (at most one save in flight;
    the end of the run, preemption and errors wait for it). Unset: on for
    strategies that can snapshot (single, ddp, fsdp: DCP's async_save); deepspeed always saves synchronously.
    A crash mid-write leaves `latest` on the previous checkpoint, exactly as a synchronous save does."""
    resume: str = "auto"
    """`auto`: continue from the newest good checkpoint if one exists; `never`: refuse to reuse an output
    folder that holds checkpoints; or a path to a checkpoint folder."""
