"""Two torchrun nodes on one machine, started the way a second real node is: `ftdist launch local --nnodes 2
--node-rank R` once per node, meeting at node 0's port on the loopback (static c10d rendezvous).

Node rank, head address and port reach the workers through launch/local.py -> torchrun -> ftdist/distributed/env.py;
the test only runs the command twice. The tiny Llama (ddp, 6 steps, micro-batch 4 x accumulation 2 x 2 ranks)
must end with weights bitwise equal to a 1-node `--nproc 2` run of the same global batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_cli
from ftdist.distributed.process_group import free_port

pytestmark = pytest.mark.distributed

CONFIG = str(REPO / "cluster_configs" / "tiny_llama_full.yaml")
COMMON = [
    "strategy=ddp",
    "train.max_steps=6",
    "train.micro_batch_size=4",
    "train.grad_accum=2",
    "train.eval_every=0",
    "train.log_every=1",
    "checkpoint.every=6",
    "tracking.progress=false",
    "tracking.plots=false",
]


def _node(rank: int, port: int, out) -> subprocess.Popen:
    command = [sys.executable, "-m", "ftdist", "launch", "local", "--nnodes", "2", "--nproc", "1"]
    command += ["--node-rank", str(rank), "--master-port", str(port), CONFIG, *COMMON, f"output_dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_nodes_equal_one_node_with_two_processes(tmp_path):
    one = run_cli("launch", "local", "--nproc", "2", CONFIG, *COMMON, f"output_dir={tmp_path / 'one'}", timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]

    port = free_port()
    nodes = [_node(rank, port, tmp_path / "two") for rank in (1, 0)]  # the second node may start first
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "ddp x2" in outputs[1]  # node 0's rank 0: one process group of 2 across the two agents

    ours, reference = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("two", "one"))
    assert ours.keys() == reference.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name], rtol=0, atol=0, msg=name)


def test_rendezvous_port_in_use_is_named_before_torchrun_starts(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("launch", "local", "--nproc", "1", "--master-port", str(port), CONFIG, timeout=60)
    assert result.returncode == 2
    assert f"rendezvous port {port} on this node is already in use" in result.stderr
    assert "--master-port (profile key master_port)" in result.stderr
    assert "torch.distributed" not in result.stderr + result.stdout  # refused before torchrun ran
