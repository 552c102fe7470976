"""`ftdist export RUN [--out DIR]` and `ftdist merge RUN [--out DIR]`: turn a run into a model folder.

export: the run's model as Hugging Face safetensors (the full model, or the adapter with its base recorded).
merge:  a LoRA/QLoRA adapter folded into its base (W + alpha/r * B @ A), saved as a plain HF model.
Both read a run folder, its final/, or a checkpoint folder of any strategy.
"""

from __future__ import annotations

import argparse

# command -> (help, what RUN may also be, default --out under the run, what the result is called)
FOLDER_COMMANDS = {
    "export": (
        "export a run's model as an HF folder",
        "or a checkpoint folder of any strategy",
        "export",
        "exported to",
    ),
    "merge": ("merge a LoRA adapter into its base model", "an adapter or a checkpoint folder", "merged", "merged into"),
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    for name, (help_text, what, out_default, _) in FOLDER_COMMANDS.items():
        parser = subparsers.add_parser(name, help=help_text, description=__doc__)
        parser.add_argument("run", help=f"a run folder (runs/NAME: its final/ or latest checkpoint), {what}")
        parser.add_argument("--out", help=f"where to write the folder (default: RUN/{out_default})")
        parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist import export as folders

    written = getattr(folders, args.command)(args.run, args.out)
    print(f"{FOLDER_COMMANDS[args.command][3]} {written}")
    return 0
