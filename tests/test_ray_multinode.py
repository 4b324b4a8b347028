"""A real two-node Ray cluster on 127.0.0.1 (`make test-slow`, or `pytest -m slow tests/test_ray_multinode.py`).

A head and a second node of 1 CPU each are started with `ray start --block` in their own process
groups (stopped by those ids, never by `ray stop`, which would stop every Ray node of the user); a
`tdabench compare --executor ray --ray-address` on both must put units on both nodes and write the
same results.json as the local executor.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gold_helpers import write_small_spec
from test_executors import assert_same_results

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
WAIT_FOR_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
print(len([n for n in ray.nodes() if n["Alive"]]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start --block ARGS` in a new process group (its own session)."""
    return subprocess.Popen([str(RAY), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                             "--disable-usage-stats", *args], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM to the node's process group (`ray start --block` then stops its raylet and workers),
    SIGKILL to the group if it is still there after 30 s."""
    if node.poll() is None:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=10)


def compare(spec: Path, out: Path, cache: Path, env: dict[str, str], *executor: str) -> str:
    args = [sys.executable, "-m", "tdabench.cli", "compare", "--task", str(spec), "--estimators",
            "grad-dot,if-explicit", "--seeds", "4", "--retraining", "loo", "--retraining-seeds", "2",
            "--out", str(out), "--cache-dir", str(cache), "--no-progress", *executor]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_comparison_across_two_nodes(tmp_path):
    pytest.importorskip("ray")
    if not RAY.exists():
        pytest.skip(f"no ray command at {RAY}")
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",  # a private test cluster
           "RAY_TMPDIR": ray_tmp}  # its sessions and its address file apart from any other Ray on the machine
    port = free_port()
    address = f"127.0.0.1:{port}"
    spec = write_small_spec(tmp_path)
    nodes = [start_node(["--head", "--port", str(port), "--include-dashboard", "false"], env, tmp_path / "head.log")]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert nodes[0].poll() is None, (tmp_path / "head.log").read_text()[-3000:]
                time.sleep(0.5)
        nodes.append(start_node(["--address", address], env, tmp_path / "worker.log"))
        alive = subprocess.run([sys.executable, "-c", WAIT_FOR_NODES, address], env=env, capture_output=True,
                               text=True, timeout=180)
        assert alive.stdout.strip().splitlines()[-1:] == ["2"], alive.stdout + alive.stderr[-3000:]

        start = time.perf_counter()
        printed = compare(spec, tmp_path / "ray", tmp_path / "cache-ray", env, "--executor", "ray",
                          "--ray-address", address)
        ray_s = time.perf_counter() - start
        print(printed)
        placed = re.search(r"^ray: (\d+) work units on (\d+) node\(s\)", printed, re.MULTILINE)
        assert placed is not None, printed
        assert placed.groups() == ("6", "2")  # 4 gold-standard seeds + 2 LOO seeds, on both nodes
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert all(node.poll() is not None for node in nodes)
    start = time.perf_counter()
    compare(spec, tmp_path / "local", tmp_path / "cache-local", env)
    print(f"wall time with Ray on 2 nodes: {ray_s:.1f} s; with the local executor: "
          f"{time.perf_counter() - start:.1f} s")
    assert_same_results(tmp_path / "ray" / "results.json", tmp_path / "local" / "results.json")
