"""The analytic memory model: bytes per device for one workload under one candidate, phase by phase.

Model states follow what ftdist's strategies actually hold:
  * single / ddp: fp32 parameters with autocast (LoRA's frozen base in the compute dtype: `Method.base_dtype`);
    fp32 gradients; DDP's reducer keeps a second fp32 copy of the gradients in its buckets
    (`gradient_as_bucket_view` is off).
  * fsdp (FSDP2): fp32 sharded parameters (a LoRA base in the compute dtype), gradients and optimizer state
    (16 B per trainable parameter / N),
    plus the unsharded compute-dtype copy of the layers being computed (and of the root while it computes
    and resharded for the loss: ftdist sets reshard_after_forward on it too), and the unsharded fp32 gradients
    of the layer being reduced.
  * deepspeed: DeepSpeed's own accounting (runtime/zero/stage_1_and_2.py, stage3.py): 16-bit parameters,
    16-bit + fp32 gradient partitions, fp32 master weights and optimizer state per partition; ZeRO-3 gathers
    up to 4 x the largest parameter at once. LoRA: only trainable parameters carry the 16 extra bytes.
    ZeRO-1/2 optimizer offload on the host: what stage_1_and_2.py allocates per rank, not its estimator (below).
Host per node (`host`): the model load, as `Strategy.materialize` does it (ftdist/strategies/materialize.py):
rank 0 reads, the others build an empty skeleton and receive (ZeRO-3: zero.Init, where every rank builds only
its partition; a QLoRA base under ZeRO-1/2 quantizes as it loads on every rank). What the reading rank holds is
`_loaded_copy`: the whole model where the load converts the file's dtype, else about one layer (the file is
memory-mapped, and its pages go back to the kernel as they are read: host_memory.file_pages_returned). Then
the offloaded states, allocated after the loaded copy is released (FSDP2's offloaded shards exist while rank 0
still holds it: those two add up).
Activations: per decoder layer and token, SDPA attention, (6h + 2kv + 4i) values for a gated MLP
((6h + 2kv + 2i) otherwise) in the compute dtype, plus fp32 norm inputs under 16-bit compute; eager attention
adds the score matrices. Checkpointing keeps each layer's input and recomputes one layer at a time.
The logits term (V x tokens): in forward the compute-dtype logits, the fp32 copy the loss makes and log_softmax's
output live together for a moment; once `token_loss_sum` returns only log_softmax's output stays, and its
backward holds that output, its gradient and the gradient of the logits (plus its cast to the compute dtype).
With the chunked loss (`train.chunked_loss`, on by default for large logits) V x tokens becomes V x one chunk.

The peak is the largest of three phases of a steady-state step (optimizer state already allocated):
end of forward, backward (its start, with the logits' gradient, and its end, with all gradients), and the
optimizer step. Summing every term at once overestimates by 10-20% (notes/planner.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftdist.planner.candidates import Candidate
from ftdist.planner.hardware import GiB, Hardware
from ftdist.planner.workload import Workload

OPTIMIZER_BYTES = {"adamw": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2, "paged_adamw_32bit": 8, "sgd": 0}
PAGED = ("paged_adamw_8bit", "paged_adamw_32bit")
QUANT_BLOCK = 64  # bitsandbytes 4-bit block size: one absmax per 64 weights
DS_BUFFER_FACTOR = 1.5  # DeepSpeed's additional_buffer_factor for host memory
CUDA_CONTEXT = int(0.75 * GiB)  # context + cuBLAS workspace: outside max_memory_allocated, inside the card
ALLOCATOR_SLACK = 0.05  # caching-allocator fragmentation on top of the peak
NCCL_BUFFERS = int(0.5 * GiB)  # NCCL channels and staging when there is a process group


@dataclass
class Estimate:
    """Bytes per device (`device`) and per node on the host (`host`), by component and by phase."""

    candidate: Candidate
    precision: str
    device: dict[str, int] = field(default_factory=dict)
    host: dict[str, int] = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)
    margin: int = 0
    pageable: int = 0  # bytes of paged optimizer state that may move to the host under pressure
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> int:
        """The largest phase: what `max_memory_allocated` (or the RSS rise on CPU) should show."""
        return max(self.phases.values())

    @property
    def needs(self) -> int:
        """Peak plus the framework margin: what must fit on the device."""
        return self.peak + self.margin

    load_overlaps: bool = False  # the offloaded states are allocated while the loaded copy is still held

    @property
    def host_total(self) -> int:
        return sum(self.host.values())

    @property
    def host_peak(self) -> int:
        """Host bytes per node at the worst moment, the figure the fit check uses: the model load, or the
        offloaded states, which come after the loaded copy is released (their sum where they overlap)."""
        load = self.host.get("model_load", 0)
        rest = self.host_total - load
        return load + rest if self.load_overlaps else max(load, rest)


def compute_dtype_bytes(workload: Workload, hardware: Hardware) -> tuple[str, int]:
    """`precision: auto` as env.pick_precision resolves it: bf16 on CUDA with bf16, fp16 on older CUDA, else fp32."""
    precision = workload.precision
    if precision == "auto":
        precision = ("bf16" if hardware.device.bf16 else "fp16") if hardware.device.kind == "cuda" else "fp32"
    return precision, 4 if precision == "fp32" else 2


def estimate(workload: Workload, candidate: Candidate, hardware: Hardware) -> Estimate:
    precision, c = compute_dtype_bytes(workload, hardware)
    result = Estimate(candidate, precision)
    states = _model_states(workload, candidate, hardware, c, result)
    act = _activations(workload, candidate, c)
    _phases(workload, candidate, hardware, c, states, act, result)
    if hardware.device.kind == "cuda":
        result.margin = CUDA_CONTEXT + int(ALLOCATOR_SLACK * result.peak) + (NCCL_BUFFERS if candidate.world > 1 else 0)
    if workload.optimizer in PAGED:
        result.pageable = result.device["optimizer"]
    return result


# --- model states -------------------------------------------------------------------------------------------
def _model_states(w: Workload, cand: Candidate, hw: Hardware, c: int, out: Estimate) -> dict[str, int]:
    """Persistent per-device bytes by component (also written into `out.device` / `out.host`)."""
    shape, n = w.shape, cand.world
    total, trainable = shape.total_params(), w.trainable_params()
    opt = OPTIMIZER_BYTES[w.optimizer] if w.optimizer != "sgd" else (4 if w.sgd_momentum else 0)
    dev, host = out.device, out.host
    base = base_bytes(w, c)
    if cand.strategy in ("single", "ddp"):
        dev["weights"] = _base_weight_bytes(w, base)
        if w.adapters:
            dev["lora_weights"] = 4 * trainable
        dev["gradients"] = (4 if w.adapters else w.param_bytes) * trainable
        dev["optimizer"] = opt * trainable
        if cand.strategy == "ddp":
            dev["ddp_buckets"] = dev["gradients"]
        # rank 0 reads; the other ranks' skeletons get storage on their device (DDP broadcasts into it). A 4-bit
        # base quantizes while it loads, straight onto the device.
        host["model_load"] = _loaded_copy(w, base)
    elif cand.strategy == "fsdp":
        dev["weights"] = base * (total - trainable) // n if w.adapters else 4 * total // n
        if w.adapters:
            dev["lora_weights"] = 4 * trainable // n
        dev["gradients"] = 4 * trainable // n
        dev["optimizer"] = opt * trainable // n
        if cand.offload_param:  # CPUOffloadPolicy: sharded parameters, gradients and the step live on the host
            per_rank = sum(dev.pop(k) for k in ("weights", "lora_weights", "gradients", "optimizer") if k in dev)
            host["offloaded_states"] = per_rank * hw.gpus_per_node
            dev.update(weights=0, gradients=0, optimizer=0)
            out.load_overlaps = True  # rank 0 holds its full copy until the shards (on the host) are filled
        host["model_load"] = _loaded_copy(w, base)  # rank 0 only (broadcast_from_rank0)
    else:
        _deepspeed_states(w, cand, hw, c, opt, out)
    return dict(dev)


def _loaded_copy(w: Workload, load_bytes: int) -> int:
    """Host bytes the reading rank holds while the model arrives. A load that converts the file's dtype (a 16-bit
    checkpoint into fp32 masters) materialises the converted model whole; a same-dtype load is the mapped file,
    whose read pages go back to the kernel every 0.1 s while a strategy copies them into storage of its own
    (FSDP2 shards, partitions, a GPU): about a layer. A QLoRA base quantizes straight onto the GPU."""
    if w.method == "qlora" or load_bytes == w.shape.file_bytes:
        return _read_at_once(w)
    return load_bytes * w.shape.total_params()


def _read_at_once(w: Workload) -> int:
    """File bytes of the largest unit a load reads before its pages go back: a decoder layer, or the embedding."""
    return w.shape.file_bytes * max(w.shape.layer_params(), w.shape.largest_param())


def base_bytes(w: Workload, c: int) -> int:
    """Bytes per parameter of the base as it loads: LoRA's frozen base in the compute dtype (`c`), anything that
    trains in fp32 (or `param_bytes`); the dense part of a QLoRA base stays fp32 (models/quantized.py)."""
    return min(w.param_bytes, c) if w.method == "lora" else w.param_bytes


def _base_weight_bytes(w: Workload, dense_bytes: int) -> int:
    """The frozen-or-not base: dense, or 4/8-bit layer linears plus constants with the rest dense (qlora)."""
    shape = w.shape
    if w.method != "qlora":
        return dense_bytes * shape.total_params()
    quantized = shape.quantizable_params()
    if w.quant_bits == 8:
        packed = quantized + 4 * shape.layers * sum(b for _, _, b in shape.layer_linears())  # int8 + row scales
    else:
        constants = quantized / QUANT_BLOCK * ((1 + 4 / 256) if w.double_quant else 4)  # absmax per block
        packed = quantized // 2 + int(constants)
    return packed + dense_bytes * (shape.total_params() - quantized)


def _deepspeed_states(w: Workload, cand: Candidate, hw: Hardware, c: int, opt: int, out: Estimate) -> None:
    """DeepSpeed's accounting (see its estimate_zero{2,3}_model_states_mem_needs), per device and per node."""
    shape, n, stage = w.shape, cand.world, cand.zero_stage
    total, trainable = shape.total_params(), w.trainable_params()
    nodes = hw.nodes
    master = 4 if c < 4 else 0  # fp32 master weights exist only under 16-bit compute
    low = c if c < 4 else 0  # the 16-bit gradient copy (fp32 runs have only the fp32 one)
    dev, host = out.device, out.host
    dev["weights"] = c * total // (n if stage == 3 else 1)
    if stage == 1:
        dev["gradients"] = low * trainable + 4 * trainable // n
    elif stage == 2:
        dev["gradients"] = (low + 4) * trainable // n
    else:
        dev["gradients"] = 4 * trainable // n
        dev["gathered_params"] = 4 * shape.largest_param()  # 16-bit parameter + gradient of the largest layer
    dev["master_weights"] = master * trainable // n
    dev["optimizer"] = opt * trainable // n
    if cand.offload_optimizer:
        moved = dev.pop("master_weights") + dev.pop("optimizer") + (dev.pop("gradients") if stage > 1 else 0)
        dev.update(master_weights=0, optimizer=0, gradients=0 if stage > 1 else dev["gradients"])
        if stage < 3:
            host["offloaded_states"] = _zero12_offload_per_rank(w, n, c, opt) * hw.gpus_per_node
        else:
            host["offloaded_states"] = int((16 * trainable) / nodes * DS_BUFFER_FACTOR)
        out.notes.append(f"optimizer step on the host (DeepSpeedCPUAdam); {moved / GiB:.2f} GiB per rank moved off")
    if cand.offload_param:
        host["offloaded_params"] = int(c * total / nodes * DS_BUFFER_FACTOR)
        dev["weights"] = 0
    if stage == 3:  # zero.Init: rank 0 copies the mapped file module by module into gathered partitions
        host["model_load"] = _read_at_once(w)
    elif w.method == "qlora":  # quantized while it loads (onto the GPU), so every rank reads its own
        host["model_load"] = _loaded_copy(w, base_bytes(w, c)) * hw.gpus_per_node
    else:  # ZeRO-1/2 keep a whole model on every rank, which rank 0 reads and the engine broadcasts
        host["model_load"] = _loaded_copy(w, base_bytes(w, c))


def _zero12_offload_per_rank(w: Workload, n: int, c: int, opt: int) -> int:
    """Host bytes one rank allocates for ZeRO-1/2 optimizer offload (deepspeed/runtime/zero/stage_1_and_2.py):
    its partition (trainable / N) of fp32 master weights (`single_partition_of_fp32_groups`), their fp32 gradient,
    the optimizer's state, and a 16-bit staging copy (`param_buffer_of_bit16_for_cpu_offload_groups`); with
    accumulation, a 16-bit buffer per partitioned gradient (`accumulated_grads_in_cpu`); and one 16-bit buffer of
    the largest parameter (`temp_grad_buffer_for_cpu_offload`).
    DeepSpeed's estimator says P x max(4 N, 16) x 1.5 per node, which grows with the total GPU count N; what it
    allocates grows with 1/N per rank (docs/planner.md)."""
    partition = w.trainable_params() // n
    low = c if c < 4 else 4  # the staging and accumulation buffers are in the model's dtype
    per_rank = (4 + 4 + opt + low) * partition + low * w.shape.largest_param()
    if w.grad_accum > 1:
        per_rank += low * partition
    return per_rank


# --- activations ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activations:
    layer: int  # one layer's saved tensors, no checkpointing
    layer_input: int  # what checkpointing keeps per layer
    saved_all: int  # every layer's saved tensors at the end of forward (checkpointing or not)
    outer: int  # embeddings output and final norm
    logits_forward: int  # logits + fp32 copy + log_softmax output, while the loss is computed
    logits_backward: int  # log_softmax output + its gradient + the logits' gradient (fp32, and cast)


def _cast_adapters_layer(w: Workload, c: int, chosen: set[str]) -> int:
    """Saved bytes per token of one gated (Llama) layer under LoRA with 16-bit autocast: peft casts each adapted
    linear's input to the adapters' fp32 and autocast casts it back for `lora_A`, so every adapted linear saves
    its own c-byte copy (plus its dropout mask), and no frozen linear saves its input. The rest: SDPA's q, k, v
    and output, the MLP's gate, up and activation outputs, and the two norms' fp32 inputs. Counted on
    SmolLM2-135M with all-linear adapters: equal to the graph's saved tensors (docs/planner.md)."""
    shape = w.shape
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    fixed = (2 * h + 2 * kv + 3 * i) * c + 8 * h
    per_input = c + (1 if w.lora_dropout > 0 else 0)
    return fixed + sum(per_input * a for name, a, _ in shape.layer_linears() if name in chosen)


def _activations(w: Workload, cand: Candidate, c: int) -> Activations:
    shape, tokens = w.shape, w.tokens
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    chosen = shape.lora_targets(w.lora_targets) if w.adapters else set()
    if w.method == "lora" and c < 4 and shape.gated:  # (a 4-bit base's own saves are not counted here)
        layer = tokens * _cast_adapters_layer(w, c, chosen)
    else:
        mlp = 4 * i if shape.gated else 2 * i
        attention = 6 * h + 2 * kv if shape.gated else 5 * h  # a fused QKV's q, k, v are views of one output
        per_token = (attention + mlp) * c + (8 * h if c < 4 else 0)  # fp32 norm inputs under 16-bit compute
        if c == 4 and shape.gated:  # fp32 rotary: q and k embedded, and rotate_half's halves (calibrated on CPU)
            per_token += 2 * (h + kv) * c
        layer = tokens * per_token
        if w.adapters:  # a frozen linear or norm saves no input for its (absent) weight gradient
            names = [name for name, _, _ in shape.layer_linears()]
            mlp_in, mlp_out = (names[4:6], names[6]) if shape.gated else (names[2:3], names[3])
            unsaved = 2 * h + (i if mlp_out not in chosen else 0) + (h if not set(mlp_in) & chosen else 0)
            layer -= tokens * unsaved * c
        if w.adapters and w.lora_dropout > 0:  # peft's dropout makes a copy of each targeted linear's input
            layer += tokens * sum((c + 1) * a for name, a, _ in shape.layer_linears() if name in chosen)
    if w.attention == "eager":
        layer += 3 * c * shape.heads * w.seq_len * tokens
    layer_input = tokens * h * c
    saved = shape.layers * (layer_input if cand.checkpointing else layer)
    upcast = 4 if c < 4 else 0
    logit_rows = min(tokens, w.loss_chunk) if w.loss_chunk else tokens  # the chunked loss holds one chunk's
    outputs = 1 if w.objective == "reward" else shape.vocab  # a reward head scores; it has no vocabulary
    logits_fwd = logit_rows * outputs * (c + upcast + 4)
    logits_bwd = logit_rows * outputs * (12 + (c if c < 4 else 0))
    return Activations(layer, layer_input, saved, 2 * tokens * h * c, logits_fwd, logits_bwd)


# --- phases ---------------------------------------------------------------------------------------------------
def _phases(
    w: Workload, cand: Candidate, hw: Hardware, c: int, states: dict[str, int], act: Activations, out: Estimate
) -> None:
    shape, n = w.shape, cand.world
    trainable_frac = w.trainable_params() / max(1, shape.total_params())
    layer_params = shape.layer_params()
    grads = states.get("gradients", 0)
    persistent = sum(v for k, v in states.items() if k != "gradients")
    accumulated = grads if w.grad_accum > 1 else 0  # gradients from earlier micro-steps stay through forward

    # Compute-dtype copies that exist only while a step runs.
    fwd_extra = bwd_extra = root = 0
    if cand.strategy in ("single", "ddp") and c < base_bytes(w, c):
        matmul = shape.layers * shape.layer_linear_params() + shape.vocab * shape.hidden
        # Autocast caches casts of trainable weights for the whole forward; casts of a frozen (lora) base are
        # saved for the input gradient unless checkpointing recomputes them; a 4-bit base de-quantizes per call.
        if w.method in ("full", "pretrain") or (w.method == "lora" and not cand.checkpointing):
            fwd_extra = bwd_extra = c * matmul
        out.device["autocast_copies"] = fwd_extra
    if cand.strategy == "fsdp":
        # The root (embeddings, head) while it computes: ftdist passes reshard_after_forward=true to the root too,
        # so it is resharded while the loss runs and gathered again for the head's backward. Plus the layer
        # computing; with more than one rank, its all-gather output (forward) and its gradient's reduce-scatter
        # input (backward) are one more layer each (FSDPMemTracker's ALL_GATHER / REDUCE_SCATTER).
        dtype = c if c < 4 else 4
        unit = dtype * layer_params
        root = dtype * (shape.embedding_params() + shape.head_params())
        comm = unit if n > 1 else 0
        grad_comm = 4 * int(layer_params * trainable_frac) if n > 1 else 0
        fwd_extra = root + unit + comm
        bwd_extra = fwd_extra + grad_comm
        out.device["unsharded_params"] = root + unit + comm
        out.device["unsharded_grads"] = grad_comm
    if cand.strategy == "fsdp" and w.grad_accum > 1:  # no reduce-scatter until the last micro-step: FSDP2 keeps
        # the unsharded gradients (ftdist's accumulating), held in the fp32 reduce dtype (FSDP2's
        # unsharded_accumulated_grad; measured by --simulate on the 7B config: 4 B per parameter, not 2)
        accumulated = 4 * w.trainable_params()
        out.device["accumulated_grads"] = accumulated
        bwd_extra -= out.device["unsharded_grads"]  # the reduce-scatter reads the accumulated gradient itself
    if cand.strategy == "deepspeed":
        bucket = min(layer_params, 50_000_000) * c  # reduce / prefetch buckets (DeepSpeed's 5e7 defaults)
        fwd_extra, bwd_extra = bucket, 2 * bucket
        out.device["buckets"] = 2 * bucket

    recompute = act.layer if cand.checkpointing else 0
    out.device["activations"] = act.saved_all + act.outer + recompute
    out.device["logits"] = max(act.logits_forward, act.logits_backward)
    sharded = cand.strategy in ("fsdp", "deepspeed")
    head_grad = int(4 * shape.vocab * shape.hidden * trainable_frac) // (n if sharded else 1)
    # The step's scratch: about one fp32 copy of the largest parameter (fused AdamW, as ftdist builds it, and the
    # per-parameter loop of foreach=False); bitsandbytes' 8-bit kernels work in blocks (a quarter of that).
    temporaries = 4 * shape.largest_param() if w.optimizer in ("adamw", "sgd") else shape.largest_param()
    out.device["temporaries"] = temporaries

    forward = persistent + accumulated + fwd_extra + act.saved_all + act.outer + act.logits_forward
    # Backward: at the loss (the logits' gradients), then through the layers from the top (all saved tensors,
    # one layer recomputed) to the bottom (every gradient).
    at_loss = persistent + accumulated + bwd_extra - root + act.saved_all + act.outer + act.logits_backward
    workspace = act.layer // 2  # gradients of one layer's intermediates while its backward runs
    top = persistent + accumulated + bwd_extra + act.saved_all + head_grad + recompute + workspace
    bottom = persistent + max(grads, accumulated) + bwd_extra + max(act.layer, recompute) + workspace
    step = persistent + grads + temporaries
    out.phases = {"forward": forward, "backward": max(at_loss, top, bottom), "optimizer": step}
