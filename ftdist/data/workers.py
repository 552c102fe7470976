"""Tokenize a recipe's examples in batches, over several worker processes, in order, with bounded memory.

Why not `datasets.map(num_proc=N)`: it needs the whole set as an Arrow table first (a second copy of the
corpus on disk) and our recipes are generators; a pool over batches keeps the recipes as they are. Why not
`Pool.imap`: its feeder thread drains the input as fast as it can, so a fast reader would queue the whole
corpus in memory; here at most `2 * workers` batches are in flight.

Each worker runs the fast tokenizer on one thread (`TOKENIZERS_PARALLELISM=false` while preparing), so N
workers use N cores. The pool starts only when a second batch exists: small sets (the tests, the shipped
samples) are tokenized in this process and never pay for starting processes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
from collections import Counter, deque
from collections.abc import Iterable, Iterator

import numpy as np

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example
from ftdist.data.tokenize import Tokenized, encode_documents, tokenize_segments
from ftdist.data.tokenize_preference import tokenize_preference

BATCH_EXAMPLES = 512
BATCH_CHARS = 1 << 20  # 1 MB of text per batch: a few ms of pickling for about 2 s of tokenizing


def batches(examples: Iterable[Example]) -> Iterator[list[Example]]:
    """Runs of examples of at most 512 examples or about 1 MB of text."""
    batch: list[Example] = []
    chars = 0
    for example in examples:
        batch.append(example)
        chars += sum(len(text) for text, _ in example.segments)
        if len(batch) >= BATCH_EXAMPLES or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


Packed = tuple[np.ndarray, np.ndarray, np.ndarray, int, Counter]  # ids, labels, lengths, truncated, dropped


def _work(batch: list[Example]) -> np.ndarray | Packed | Tokenized:
    """One batch in a worker: the document stream (documents), flat examples (segments), cheap to pickle, or
    the preference records (a few small arrays each)."""
    tokenizer, config, kind = _STATE["args"]
    if kind == "documents":
        return encode_documents(batch, tokenizer, config)
    if kind == "preference":
        return tokenize_preference(batch, tokenizer, config)
    out = tokenize_segments(batch, tokenizer, config)
    lengths = np.array([len(ids) for ids, _ in out.examples], dtype=np.int64)
    ids = np.concatenate([i for i, _ in out.examples]) if out.examples else np.empty(0, np.int32)
    labels = np.concatenate([lab for _, lab in out.examples]) if out.examples else np.empty(0, np.int32)
    return ids, labels, lengths, out.truncated, out.dropped


def unpack(result: Packed | Tokenized) -> Tokenized:
    """Examples as views into the flat arrays a worker returned (preference records come whole)."""
    if isinstance(result, Tokenized):
        return result
    ids, labels, lengths, truncated, dropped = result
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    examples = [(ids[a:b], labels[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return Tokenized(examples, truncated, dropped)


_STATE: dict = {}


def _init(args) -> None:
    _STATE["args"] = args


def _init_worker(args) -> None:
    _init(args)
    # A forked worker inherits the parent's Python signal handlers. Where the parent catches SIGTERM (a Ray
    # worker, a test process that ran Ray, a user's own handler), the pool's terminate() at the end of a
    # prepare would only set the parent's flag in the worker, which then waits for tasks forever, and so does
    # the join: a hang seen in CI. The workers take the default action again, so terminate() ends them. Only
    # in a pool worker: the process that prepares in-process keeps its handlers (and in a Ray Train worker it
    # runs off the main thread, where Python refuses to set one).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def tokenized_batches(
    example_batches: Iterable[list[Example]], tokenizer, config: DataConfig, kind: str, workers: int
) -> Iterator[np.ndarray | Packed]:
    """`_work` of each batch, in input order; up to `workers` processes, `2 * workers` batches in flight."""
    args = (tokenizer, config, kind)
    batches_in = iter(example_batches)
    first, second = next(batches_in, None), next(batches_in, None)
    with single_threaded_tokenizer():
        if second is None or workers <= 1:  # one batch (a small set), or one worker: no processes to start
            _init(args)
            for batch in (b for b in (first, second) if b is not None):
                yield _work(batch)
            for batch in batches_in:
                yield _work(batch)
            return
        # fork: the workers inherit the tokenizer and the config instead of unpickling them (spawn would also
        # re-import torch and transformers in each, seconds per worker).
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_init_worker, initargs=(args,)) as pool:
            pending: deque = deque()
            for batch in itertools.chain((first, second), batches_in):
                pending.append(pool.apply_async(_work, (batch,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()


@contextlib.contextmanager
def single_threaded_tokenizer() -> Iterator[None]:
    """The Rust tokenizer on one thread per process while preparing (parallelism comes from the workers)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
