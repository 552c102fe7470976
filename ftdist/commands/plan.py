"""`ftdist plan CONFIG`: memory per device for every strategy the hardware allows, which fit, which is fastest.

Reads only the config and the model's config.json (or the shipped catalogue): no torch, no weights, about a
second for a 70B model. `--simulate` also runs ftdist's own FSDP2 wrapping on fake tensors (needs torch).
Exit status: 0 when something fits, 1 when nothing does (the output says what would), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json

from ftdist.commands import add_config_arguments, add_set_argument


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("plan", help="will it fit? memory per device for each strategy", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--gpus", type=int, default=1, help="devices per node (default 1)")
    parser.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    parser.add_argument("--gpu", help="device preset: t4, a10g, l4, a100-40, a100-80, h100-80, h200, m1-16, ..., cpu")
    parser.add_argument("--gpu-mem", help="memory per device, e.g. 80GiB (overrides the preset's)")
    parser.add_argument("--cpu-mem", help="host RAM per node, e.g. 512GiB (default 512GiB)")
    add_set_argument(parser, "planning")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="also run ftdist's FSDP2 wrapping on fake tensors at the planned world size (torch)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import load_config
    from ftdist.planner import build_hardware
    from ftdist.planner.recommend import plan
    from ftdist.planner.report import plan_json, render_table
    from ftdist.planner.workload import workload_from_config

    config = load_config(args.config, args.overrides)
    hardware = build_hardware(args.gpu, args.gpu_mem, args.gpus, args.nodes, args.cpu_mem)
    result = plan(workload_from_config(config), hardware)
    simulated = None
    if args.simulate:
        from ftdist.planner.simulate import simulate_plan

        simulated = simulate_plan(config, result)
    if args.json:
        body = plan_json(result)
        if simulated is not None:
            body["simulation"] = simulated
        print(json.dumps(body, indent=2))
    else:
        from ftdist.planner.candidates import candidate_from_config

        own = None if config.strategy.name == "auto" else candidate_from_config(config.strategy, hardware.world)
        print(render_table(result, own))
        if simulated is not None:
            from ftdist.planner.simulate import render_simulation

            print(render_simulation(simulated))
    return 0 if result.best is not None else 1
