"""``dockyard bench`` smoke runs: the tool runs, counts, reports errors and refuses bad aims.

Not a benchmark: the figures are only checked for sanity (requests counted, no errors, a
single target's ratio to itself is 1.0). The real comparison is
``python benchmarks/compare.py``, which does not run in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, free_port

SMOKE_WORKLOADS = "push-mono-1m-c1,manifest-get-c64"


def bench(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "bench", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quick_run_counts_requests_and_ratio_to_itself_is_one(
    fresh_registry: Server, tmp_path: Path
) -> None:
    assert fresh_registry.proc is not None
    out = tmp_path / "out.json"
    pid = str(fresh_registry.proc.pid)
    done = bench(
        fresh_registry.url,
        "--pid",
        pid,
        "--workloads",
        SMOKE_WORKLOADS,
        "--quick",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["errors"] == 0
    assert {r["workload"] for r in data["runs"]} == set(SMOKE_WORKLOADS.split(","))
    for run in data["runs"]:
        assert run["errors"] == 0, run["error_samples"]
        assert run["ops"] > 0 and run["requests"] >= run["ops"]
        assert run["wall_s"] > 0 and run["p50_ms"] > 0 and run["p99_ms"] >= run["p50_ms"]
        assert run["server_cpu_s"] is not None and run["server_cpu_s"] >= 0
    push = next(r for r in data["runs"] if r["workload"] == "push-mono-1m-c1")
    assert push["bytes"] == push["ops"] * 1024 * 1024 and push["mib_s"] > 0
    assert push["requests"] == 2 * push["ops"], "a monolithic push is POST then PUT"
    get = next(r for r in data["runs"] if r["workload"] == "manifest-get-c64")
    assert get["req_s"] > 0 and get["ops"] == get["requests"]
    for summary in data["summary"]:
        assert summary["targets"][0]["ratio"] == 1.0
    (server,) = data["servers"]
    assert server["pid"] == fresh_registry.proc.pid
    assert 0 < server["peak_rss_mib"] <= server["vmhwm_mib"] < 1024
    assert "push-mono-1m-c1" in done.stdout and "1.00x" not in done.stdout  # one target: no ratio


def test_pulls_verified_against_their_digests(fresh_registry: Server, tmp_path: Path) -> None:
    """--verify hashes every pulled body: a clean run proves the bytes came back intact."""
    out = tmp_path / "out.json"
    done = bench(
        fresh_registry.url, "--workloads", "pull-1m-c8", "--quick", "--verify", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["errors"] == 0 and run["ops"] > 0
    assert run["bytes"] == run["ops"] * 1024 * 1024


def test_a_target_that_is_down_is_reported_as_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    url = f"http://127.0.0.1:{free_port()}"
    done = bench(url, "--workloads", SMOKE_WORKLOADS, "--quick", "--json", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(out.read_text())
    assert data["errors"] >= 2  # every workload failed
    assert all(r["errors"] and r["ops"] == 0 for r in data["runs"])
    assert "errors" in done.stderr


def test_refuses_targets_off_this_machine_and_unknown_workloads() -> None:
    done = bench("http://192.0.2.1:5000", "--quick")
    assert done.returncode == 2 and "only loopback" in done.stderr
    done = bench("http://127.0.0.1:1", "--workloads", "no-such-workload")
    assert done.returncode == 2 and "no-such-workload" in done.stderr


def test_real_client_mode_pushes_and_pulls_with_skopeo(
    fresh_registry: Server, tmp_path: Path
) -> None:
    """--client skopeo: a push then a pull per round, each timed, the server's CPU read,
    and the image deleted after each round so the next push sends every byte again."""
    assert fresh_registry.proc is not None
    out = tmp_path / "out.json"
    args = ["--client", "skopeo", "--size-mib", "2", "--repeat", "2"]
    args += ["--image-dir", str(tmp_path / "images"), "--json", str(out)]
    done = bench(fresh_registry.url, "--pid", str(fresh_registry.proc.pid), *args, timeout=120)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["mode"] == "real-clients" and data["errors"] == 0
    size = data["image"]["size"]
    assert 2 * 1024 * 1024 < size < 2 * 1024 * 1024 + 4096  # one tar of 2 MiB of content
    runs = data["runs"]
    assert [(r["round"], r["phase"]) for r in runs] == [
        (0, "push"),
        (0, "pull"),
        (1, "push"),
        (1, "pull"),
    ]
    for run in runs:
        assert run["error"] is None and run["wall_s"] > 0 and run["bytes"] == size
        assert run["server_cpu_s"] is not None and run["server_cpu_s"] >= 0
    for summary in data["summary"]:
        assert summary["runs"] == 2 and summary["ratio"] == 1.0
    assert "| skopeo | push |" in done.stdout and "| skopeo | pull |" in done.stdout
    # Each round's image was deleted afterwards, so the next round's push sends it all.
    assert len({r["repo"] for r in runs}) == 2
    for run in runs:
        base = f"{fresh_registry.url}/v2/{run['repo']}"
        manifest = httpx.get(f"{base}/manifests/{data['image']['manifest']}")
        assert manifest.status_code == 404
        assert httpx.head(f"{base}/blobs/{data['image']['layer']}").status_code == 404
    # The image is made once: a second run reuses it.
    layout = tmp_path / "images" / "layer-2m"
    before = (layout / "index.json").stat().st_mtime_ns
    again = bench(fresh_registry.url, *args[:-2], "--repeat", "1", timeout=120)
    assert again.returncode == 0, again.stderr
    assert (layout / "index.json").stat().st_mtime_ns == before


def test_real_client_mode_refuses_unknown_clients_and_mixed_modes() -> None:
    done = bench("http://127.0.0.1:1", "--client", "no-such-client")
    assert done.returncode == 2 and "no-such-client" in done.stderr
    done = bench("http://127.0.0.1:1", "--client", "skopeo", "--workloads", "catalog")
    assert done.returncode == 2 and "two modes" in done.stderr
    done = bench("http://127.0.0.1:1", "--size-mib", "4")
    assert done.returncode == 2 and "--size-mib" in done.stderr


def test_real_client_mode_stops_when_a_target_keeps_the_image(tmp_path: Path) -> None:
    """docker-registry without deletes: the round's image cannot be removed, so the next
    push would skip its blobs; the run stops with a message that says so."""
    port = free_port()
    config = tmp_path / "docker.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["/usr/bin/docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        images = str(tmp_path / "images")
        args = ["--client", "skopeo", "--size-mib", "1", "--repeat", "2", "--image-dir", images]
        done = bench(url, *args, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "must be deleted" in done.stderr and "405" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        proc.terminate()
        proc.wait(10)
