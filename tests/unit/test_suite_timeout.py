"""The suite's own safety net: under the project's pytest config, a test stuck on a server
that never answers fails alone after the per-test timeout, and the run goes on.

Runs pytest on two throw-away tests in a subprocess, with the timeout lowered to 2 s
(``-o timeout=2``); everything else comes from pyproject.toml, as for the real suite.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_a_hung_server_fails_one_test_not_the_run(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as hung:  # listens, never answers
        port = hung.getsockname()[1]
        (tmp_path / "test_hang.py").write_text(
            textwrap.dedent(
                f"""
                import socket

                def test_waits_on_a_server_that_never_answers():
                    with socket.create_connection(("127.0.0.1", {port})) as s:
                        s.sendall(b"GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                        s.recv(1)  # no socket timeout: only pytest-timeout ends this

                def test_after_it_still_runs():
                    assert True
                """
            )
        )
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-c", str(PYPROJECT)),
                *("-p", "no:cacheprovider", "-p", "no:xdist", "-o", "timeout=2"),
                str(tmp_path / "test_hang.py"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "Timeout" in proc.stdout
    assert "test_waits_on_a_server_that_never_answers" in proc.stdout
