"""`ftdist compare RUN_OR_RESULT ... [--out DIR]`: an HTML report and a Markdown summary side by side.

Each argument is a run folder (its eval/tuned.json, eval/base.json and metrics.jsonl are read) or an eval
result file written by `ftdist eval`. No model is loaded: the report is rebuilt from files alone.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("compare", help="compare runs and eval results in one report", description=__doc__)
    parser.add_argument("sources", nargs="+", help="run folders or eval result .json files")
    parser.add_argument("--out", default="compare", help="folder for report.html and report.md (default: compare/)")
    parser.add_argument("--samples", type=int, default=8, help="generations shown side by side (default 8)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.eval.report import write_report

    html, markdown = write_report(args.sources, args.out, samples=args.samples)
    print(f"report: {html}\nsummary: {markdown}")
    return 0
