"""Loading options for a quantized base (`method: qlora`): a bitsandbytes config and where to place it.

Quantization happens while `from_pretrained` reads the weights, which is why it is a load option and not a
step of `apply_method`: the full-precision base never has to fit in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ftdist.config import RunConfig
from ftdist.errors import FtdistError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SERVED_DEVICES = ("cuda", "cpu", "xpu")  # devices bitsandbytes 0.50 has 4-bit kernels for


def quantized_load_options(config: RunConfig) -> dict:
    """`from_pretrained` keyword arguments for the method: {} unless the base is quantized."""
    if config.method.weights != "qlora":
        return {}
    from transformers import BitsAndBytesConfig

    device = _target_device(config)
    check_bitsandbytes_serves(device)
    quant = config.method.quantization
    if quant.load_in_8bit:
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    else:
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant.quant_type,
            bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=quant_compute_dtype(quant.compute_dtype, device),
        )
    # device_map places the quantized weights directly on the training device (one whole copy per process).
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if device == "cuda" else {"": device}
    return {"quantization_config": bnb, "device_map": device_map}


def quant_compute_dtype(requested: str, device: str) -> torch.dtype:
    """`method.quantization.compute_dtype` for the device. `auto` avoids bf16 where it is emulated: on a 2-core
    AVX2 EPYC a 2048x576x1536 matmul took 113 ms in fp32 and 6.3 s in bf16, and QLoRA's every matmul is one."""
    if requested != "auto":
        return DTYPES[requested]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        from ftdist.distributed.device import cpu_has_fast_bf16

        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.bfloat16


def check_bitsandbytes_serves(device: str) -> None:
    """Fail early, with the fix, where bitsandbytes has no quantized kernels for the device."""
    if device not in SERVED_DEVICES:
        raise FtdistError(
            f"method: qlora quantizes with bitsandbytes, which has no 4-bit kernels for {device}; "
            "use device: cpu or cuda, or method: lora"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise FtdistError(f"method: qlora needs bitsandbytes ({error}); pip install bitsandbytes") from None


def _target_device(config: RunConfig) -> str:
    if config.device != "auto":
        return config.device
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


@contextmanager
def without_4bit_kernel_notice() -> Iterator[None]:
    """Drop the warning bitsandbytes logs on import on AVX512-BF16 CPUs when the optional `kernels` package
    (a faster 4-bit matmul) is missing. peft imports bitsandbytes even for plain LoRA, where no 4-bit layer
    exists, so the notice would only mislead there. bitsandbytes logs it once, at import; nothing else is hidden.
    """
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")

    def keep(record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward" not in str(record.msg)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
