"""Third-party progress bars and notices, off unless `--verbose`: a batch log should hold ftdist's own lines.

What is silenced, and why it is safe: transformers' and huggingface_hub's progress bars (`Loading weights`,
downloads) and transformers' advisory warnings; bitsandbytes' import-time notices below ERROR (such as the
"pip install kernels" hint for a faster 4-bit matmul on some CPUs); DeepSpeed's accelerator guess ("Setting
accelerator to CPU"). Errors still print. Environment variables are set only where the user has not set them,
and are inherited by the processes a launcher starts.
"""

from __future__ import annotations

import logging
import os

QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # read when huggingface_hub / transformers are imported
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def quiet_third_party() -> None:
    """Silence the libraries' progress bars and notices for this process and the ones it starts."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # DeepSpeed resets its logger's level when it is imported, but keeps the logger's filters.
    logging.getLogger("DeepSpeed").addFilter(_not_an_accelerator_guess)


def _not_an_accelerator_guess(record: logging.LogRecord) -> bool:
    return "Setting accelerator to" not in str(record.msg) and "Setting ds_accelerator" not in str(record.msg)
