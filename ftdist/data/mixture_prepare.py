"""`data.sources`: prepare each source into its own cache, and describe the mixture in one card.

Each source is a run config of its own (its `path` and `recipe`, every other `data:` setting shared), so it
is prepared, fingerprinted and cached exactly as a single `data.path` is, and a source shared by two mixtures
is prepared once. All sources must encode with one tokenizer: a real one is the model's; the char tokenizer
gets one vocabulary over every source's text, saved once under `data.cache_dir` (so its files are part of
each source's fingerprint, as a real tokenizer's are).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ftdist.config import RunConfig
from ftdist.data.prepare import Prepared, prepare
from ftdist.distributed.env import DistEnv
from ftdist.staging import staged_folder


def source_configs(config: RunConfig, build: bool = True) -> list[RunConfig]:
    """One run config per entry of `data.sources`."""
    configs = []
    for source in config.data.sources or []:
        update = {"path": source.path, "recipe": source.recipe or config.data.recipe, "sources": None}
        configs.append(config.model_copy(update={"data": config.data.model_copy(update=update)}))
    folder = _shared_char_tokenizer(configs, build)
    if folder is not None:
        model = config.model.model_copy(update={"tokenizer": str(folder)})
        configs = [c.model_copy(update={"model": model}) for c in configs]
    return configs


def prepare_sources(config: RunConfig, build: bool = True, env: DistEnv | None = None) -> list[Prepared]:
    """Each source's prepared folder, in order (`env`: the ranks that build them together, as for `prepare`)."""
    return [prepare(source, build, env=env) for source in source_configs(config, build)]


def _shared_char_tokenizer(configs: list[RunConfig], build: bool) -> Path | None:
    from ftdist.data.build import char_vocabulary
    from ftdist.models.char_tokenizer import build_char_tokenizer

    if not configs or configs[0].model.tokenizer_source != "char":
        return None
    vocabulary = "".join(sorted(set().union(*(char_vocabulary(c) for c in configs))))
    name = hashlib.sha256(vocabulary.encode()).hexdigest()[:16]
    folder = Path(configs[0].data.cache_dir).expanduser() / f"char-tokenizer-{name}"
    if build and not folder.exists():
        with staged_folder(folder, replace=False) as staging:
            build_char_tokenizer(vocabulary).save_pretrained(staging)
    return folder


def mixture_card(config: RunConfig, prepared: list[Prepared]) -> dict:
    """Per source: its weight, its train tokens, their share of all prepared train tokens, and the share of
    trained-on tokens it will give (rows are drawn by weight; a row's tokens depend on its source's padding)."""
    weights = [source.weight for source in config.data.sources]
    total_weight = sum(weights)
    trains = [p.card["splits"]["train"] for p in prepared]
    tokens = [t["tokens"] for t in trains]
    per_row = [t["tokens"] / max(1, t["sequences"]) for t in trains]
    drawn = [w * r for w, r in zip(weights, per_row, strict=True)]
    return {
        "sources": [
            {
                "path": source.path,
                "recipe": p.card["recipe"],
                "folder": str(p.folder),
                "weight": round(w / total_weight, 4),
                "train_tokens": t,
                "share_of_prepared_tokens": round(t / max(1, sum(tokens)), 4),
                "share_of_trained_tokens": round(d / max(1e-12, sum(drawn)), 4),
                "train_rows": train["sequences"],
            }
            for source, p, w, t, d, train in zip(
                config.data.sources, prepared, weights, tokens, drawn, trains, strict=True
            )
        ]
    }


def render_mixture(mixture: dict) -> str:
    lines = ["mixture (rows drawn by weight; a source that runs out starts over in a new order):"]
    for number, source in enumerate(mixture["sources"]):
        lines.append(
            f"  [{number}] {source['path']} ({source['recipe']}): weight {source['weight']:.3f}, "
            f"{source['train_tokens']:,} train tokens ({100 * source['share_of_prepared_tokens']:.1f}% of those "
            f"prepared), {100 * source['share_of_trained_tokens']:.1f}% of the tokens trained on"
        )
    return "\n".join(lines)
