"""The README's loopback walk-through, run as written: htpasswd, openssl, serve, podman, skopeo.

The commands are taken from README.md itself (every ``sh`` block between the
``walkthrough:loopback`` markers), so the README cannot drift from what works. They run
unchanged, port 5000 included, in a network namespace of their own (``unshare -n``): its
loopback is private, so port 5000 is free there whatever else the machine runs, and
nothing of the walk-through can reach beyond it. The working folder holds only
``examples/`` (a link to the checkout's), as a checkout would; podman and skopeo get
storage, auth file and policy of their own under the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).parents[2]
START, END = "<!-- walkthrough:loopback -->", "<!-- /walkthrough:loopback -->"


def walkthrough_commands() -> str:
    """The shell blocks of the README's walk-through, in order, joined."""
    readme = (CHECKOUT / "README.md").read_text()
    section = readme[readme.index(START) : readme.index(END)]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    assert len(blocks) == 4, f"expected the walk-through's 4 steps, found {len(blocks)}"
    return "\n".join(blocks)


def client_env(home: Path) -> dict[str, str]:
    """podman and skopeo with their own storage, registries, policy and login file."""
    (home / ".config/containers").mkdir(parents=True)
    (home / "xdg").mkdir()
    conf = home / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{home / "run"}"\ngraphroot = "{home / "graph"}"\n'
    )
    (home / "registries.conf").write_text("")
    policy = {"default": [{"type": "insecureAcceptAnything"}]}
    (home / ".config/containers/policy.json").write_text(json.dumps(policy))
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "HOME": str(home),
        "CONTAINERS_STORAGE_CONF": str(conf),
        "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        "XDG_RUNTIME_DIR": str(home / "xdg"),
    }


def test_readme_loopback_walkthrough(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "examples").symlink_to(CHECKOUT / "examples")
    script = "ip link set lo up\nset -euo pipefail\n" + walkthrough_commands()
    isolate = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    proc = subprocess.Popen(
        [*isolate, "bash", "-c", script],
        cwd=work,
        env=client_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = work / "loopback" / "dockyard.log"
    server_log = log.read_text() if log.exists() else "(no server log)"
    assert proc.returncode == 0, (
        f"the walk-through failed:\n{output}\n--- server log:\n{server_log}"
    )

    assert "examples/config-loopback.json is valid" in output
    assert '"code": "UNAUTHORIZED"' in output, "the registry answered without a login"
    assert "Login Succeeded" in output
    assert '"Name": "127.0.0.1:5000/demo/hello"' in output  # skopeo inspect, with the login

    lines = [json.loads(line) for line in server_log.splitlines()]
    pushes = [
        d
        for d in lines
        if d.get("method") == "PUT" and d.get("path") == "/v2/demo/hello/manifests/1"
    ]
    assert [(d["status"], d["user"]) for d in pushes] == [(201, "alice")], pushes
    assert not [d for d in lines if d["level"] in ("error", "critical")], server_log
    assert "dockyard stopped" in server_log, "kill %1 did not stop the server cleanly"
    index = json.loads((work / "loopback/data/demo/hello/index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "1"
    ]
