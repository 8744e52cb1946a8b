"""The supervisor: workers share one port, a killed worker comes back while the others
serve, SIGHUP and SIGTERM reach every worker, start-up failures stay one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from cli_helpers import assert_one_line_error
from conftest import Server, free_port
from ops_helpers import ops_doc, wait_for, write_json_atomically
from spec_helpers import push_image, start_upload
from storage_helpers import process_tree
from workers_helpers import (
    connection_to,
    fresh,
    log_docs,
    send,
    start_workers,
    worker_pids,
    workers_of,
)


def test_every_worker_answers_on_the_one_port(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    try:
        ids = []
        for _ in range(40):
            resp, rid = fresh(server, "GET", "/v2/")
            assert resp.status_code == 200
            ids.append(rid)
        assert workers_of(server, ids) == {0, 1}
    finally:
        server.stop()


def test_default_is_one_worker_per_cpu(tmp_path: Path) -> None:
    port = free_port()
    args = ["--port", str(port), "--root", str(tmp_path / "data")]
    server = Server(root=tmp_path / "data", port=port, args=args, workers=None)
    server.start()
    try:
        cpus = len(os.sched_getaffinity(0))
        want = cpus if cpus > 1 else 0  # one worker: the single process, no children
        wait_for(lambda: len(worker_pids(server)) == want, 20, f"{want} workers")
    finally:
        server.stop()


def test_kill_9_of_a_worker_restarts_it_while_the_others_serve(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 3)
    try:
        before = worker_pids(server)
        victim = before[1]
        os.kill(victim, signal.SIGKILL)
        for _ in range(20):  # no request fails while the worker is gone or starting
            assert fresh(server, "GET", "/v2/")[0].status_code == 200
        wait_for(
            lambda: len(worker_pids(server)) == 3 and victim not in worker_pids(server),
            20,
            "the killed worker to be replaced",
        )
        assert set(before) - {victim} <= set(worker_pids(server)), "the others kept running"
        restarts = [d for d in log_docs(server) if "ended with signal 9" in str(d["message"])]
        assert len(restarts) == 1, restarts
    finally:
        server.stop()


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a parent that never reaps is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_killed_workers_walker_processes_end_with_it(tmp_path: Path) -> None:
    """GC's walker processes (a forkserver and its pool, started by the worker that runs
    a pass) end when that worker is killed with -9. The pool waits for a message the dead
    worker never sends, and every crash used to leave both behind for good."""
    server = start_workers(tmp_path / "data", 2)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            pushed = push_image(c, "walk/app", "v1")
        victim = worker_pids(server)[0]
        conn = connection_to(server, victim)
        try:  # a delete starts an inline GC pass, whose walks start the walker processes
            answer = send(conn, "DELETE", f"/v2/walk/app/manifests/{pushed.digest}")
        finally:
            conn.close()
        assert answer.status == 202
        wait_for(lambda: len(process_tree(victim)) >= 3, 30, "the worker's walker processes")
        helpers = [p for p in process_tree(victim) if p != victim]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: not any(_running(p) for p in helpers),
            20,
            f"the killed worker's walker processes {helpers} to end",
        )
    finally:
        server.stop()


def test_sighup_reloads_every_worker(tmp_path: Path) -> None:
    root, path = tmp_path / "data", tmp_path / "config.json"
    doc = ops_doc(root)
    write_json_atomically(path, doc)
    server = start_workers(root, 2, config=path)
    try:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (
                {
                    d.get("worker")
                    for d in log_docs(server)
                    if str(d["message"]).startswith("SIGHUP: config reloaded")
                }
                == {0, 1}
            ),
            20,
            "both workers to log their reload",
        )
        assert len(worker_pids(server)) == 2
    finally:
        server.stop()


def test_sigterm_drains_every_worker_and_exits_0(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    pids = worker_pids(server)
    repo = "drain/slow"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        location = start_upload(c, repo)

    sent: list[httpx.Response] = []

    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        time.sleep(1.5)  # SIGTERM arrives while this request is in flight
        yield b"b" * 1000

    def upload() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            sent.append(c.patch(location, content=body()))

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(0.5)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    # The port refuses new connections while the upload is still in flight.
    wait_for(refused, 5, "the listener to close in every process")
    assert thread.is_alive(), "the upload ended before the listener closed"
    thread.join(30)
    assert sent and sent[0].status_code == 202, sent
    assert server.proc.wait(30) == 0
    stopped = {d.get("worker") for d in log_docs(server) if d["message"] == "dockyard stopped"}
    assert stopped == {0, 1}
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def test_start_up_failure_is_one_line_with_workers(tmp_path: Path) -> None:
    db = tmp_path / "data" / "_dockyard" / "cache.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, it is a test" * 100)
    cmd = [sys.executable, "-m", "dockyard", "serve", "--root", str(tmp_path / "data")]
    cmd += ["--port", str(free_port()), "--workers", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, str(db))


def test_workers_that_keep_dying_at_start_stop_the_server(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_workers(root, 2)
    try:
        db = root / "_dockyard" / "cache.db"
        db.unlink()
        db.mkdir()  # a restarted worker cannot open it: it dies before it serves
        os.kill(worker_pids(server)[1], signal.SIGKILL)
        assert server.proc is not None
        assert server.proc.wait(60) != 0
        assert any("keep dying" in str(d["message"]) for d in log_docs(server))
    finally:
        server.stop()


def test_stopping_after_gc_leaves_nothing_but_json_in_the_log(tmp_path: Path) -> None:
    """A delete starts GC's walker processes in a worker; SIGTERM then must not make
    multiprocessing warn of leaked semaphores (a forked worker leaves through os._exit)."""
    server = start_workers(tmp_path / "data", 2)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for worker in range(4):  # fresh connections: both workers likely collect
            image = push_image(c, f"gc/w{worker}", "v1")
            r = c.delete(f"/v2/gc/w{worker}/manifests/{image.digest}")
            assert r.status_code == 202, r.text
    pids = worker_pids(server)

    def children(pid: int) -> list[str]:
        tasks = Path(f"/proc/{pid}/task")
        return [c for t in tasks.iterdir() for c in (t / "children").read_text().split()]

    # The inline passes start the walker processes (with multiprocessing's forkserver).
    wait_for(lambda: any(children(pid) for pid in pids), 30, "GC's walker processes")
    time.sleep(2.0)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    stray = [line for line in server.output().splitlines() if not line.startswith("{")]
    assert stray == [], stray
