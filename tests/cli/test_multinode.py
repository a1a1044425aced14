"""Two nodes emulated on one machine: ``train.py ... trainer.num_nodes=2 trainer.devices=1 trainer.strategy=ddp``
started by hand as two processes, as on two hosts (``NODE_RANK`` 0 and 1, one ``MASTER_ADDR``/``MASTER_PORT``),
sharing one run directory and one cache directory (where the first run generates the smoke data set): training
completes after both processes were killed mid-epoch, with the weights of the same training run uninterrupted on
one node (2 processes started by Lightning).

The environment is what Lightning's ``LightningEnvironment`` reads for processes it did not start:
``LOCAL_RANK`` (its presence means "launched externally": without it Lightning would act as the launcher and
re-run the command for the node's other devices), ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the global
rank is ``NODE_RANK * devices + LOCAL_RANK``, the world size ``num_nodes * devices``. ``WORLD_SIZE`` is what
Lightning's own launcher would export.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.cli.test_ddp import RUN, weights
from tests.helpers import REPO

NODES = ("trainer.num_nodes=2", "trainer.devices=1", "trainer.strategy=ddp")
TIMEOUT_S = 300  # a run takes ~12 s on the 2-core machine; a hang (one node waiting for the other) fails here


@dataclass(frozen=True)
class Node:
    rank: int
    returncode: int
    output: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_on_two_nodes(run_dir: Path, cache: Path, *extra: str) -> list[Node]:
    """Start the two "nodes" with the same command and wait for both; once more on another port if the one found
    free was taken meanwhile (rank 0 could not listen on it: nothing was trained)."""
    nodes = _start_and_wait(run_dir, cache, _free_port(), extra)
    if any("EADDRINUSE" in n.output or "address already in use" in n.output.lower() for n in nodes):
        nodes = _start_and_wait(run_dir, cache, _free_port(), extra)
    return nodes


def _start_and_wait(run_dir: Path, cache: Path, port: int, extra: tuple[str, ...]) -> list[Node]:
    """Both processes' ends. A process still running at TIMEOUT_S, or 60 s after the other failed (it would wait for
    its peer in a collective), is killed and fails the test."""
    command = [sys.executable, str(REPO / "train.py"), *RUN, *NODES, f"hydra.run.dir={run_dir}", *extra]
    outputs = [run_dir.with_name(f"{run_dir.name}.node{rank}.out") for rank in (0, 1)]
    processes = []
    for rank, output in enumerate(outputs):
        env = dict(
            os.environ,
            HYDRA_FULL_ERROR="1",
            PYTHONWARNINGS="ignore",
            OMP_NUM_THREADS="1",
            SPP_CLS_CACHE=str(cache),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            NODE_RANK=str(rank),
            LOCAL_RANK="0",
            WORLD_SIZE="2",
        )
        with output.open("w") as sink:
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT))
    deadline, failed_at = time.monotonic() + TIMEOUT_S, None
    try:
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0, -signal.SIGKILL)]
            if failed and failed_at is None:
                failed_at = time.monotonic()
            if time.monotonic() > deadline or (failed_at is not None and time.monotonic() > failed_at + 60):
                break
            time.sleep(0.2)
    finally:
        hung = [rank for rank, process in enumerate(processes) if process.poll() is None]
        for rank in hung:
            processes[rank].kill()
            processes[rank].wait()
    nodes = [Node(rank, p.returncode, out.read_text()) for rank, (p, out) in enumerate(zip(processes, outputs))]
    assert not hung, f"node(s) {hung} still running, killed by the test\n{_report(nodes)}"
    return nodes


def _report(nodes: list[Node]) -> str:
    return "\n".join(f"--- node {n.rank}: status {n.returncode}\n{n.output[-3000:]}" for n in nodes)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("multinode-cache")


@pytest.fixture(scope="module")
def two_node_run(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both nodes killed after step 6 (both generate the data set into the empty cache at once), then the same
    command again: the run resumes and ends."""
    run_dir = tmp_path_factory.mktemp("multinode") / "run"
    killed = train_on_two_nodes(
        run_dir, cache, "+callbacks.kill._target_=tests.cli.interrupt.KillAt", "+callbacks.kill.step=6"
    )
    assert [n.returncode for n in killed] == [-signal.SIGKILL] * 2, _report(killed)
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in killed[0].output and "GLOBAL_RANK: 1, MEMBER: 2/2" in killed[1].output
    resumed = train_on_two_nodes(run_dir, cache)
    assert [n.returncode for n in resumed] == [0, 0], _report(resumed)
    return run_dir


@pytest.mark.slow
def test_two_nodes_train_to_the_end_in_one_run_directory(two_node_run: Path) -> None:
    metrics = json.loads((two_node_run / "metrics.json").read_text())
    assert metrics["global_step"] == 12 and metrics["val/images"] == 32  # 3 epochs of 64 images, global batch 16
    assert "(2 devices)" in (two_node_run / "train.log").read_text()  # the throughput line counts both processes
    assert sorted(p.name for p in (two_node_run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_both_nodes_killed_mid_epoch_resume_to_the_uninterrupted_weights(two_node_run: Path, ddp_run: Path) -> None:
    # the reference: the same 2-process training on one node (Lightning's launcher), never interrupted
    ours, theirs = weights(two_node_run), weights(ddp_run)
    assert all(torch.equal(ours[key], tensor) for key, tensor in theirs.items())
    assert "resumed at epoch 2, batch 2 (global step 6)" in (two_node_run / "train.log").read_text()


@pytest.mark.slow
def test_only_global_rank_zero_writes_train_log(two_node_run: Path) -> None:
    log = (two_node_run / "train.log").read_text()
    assert log.count("- run directory: ") == 2, log  # the killed start and the resumed one
    assert "- run directory: " in (two_node_run / "train_rank1.log").read_text()  # the second node's own file
