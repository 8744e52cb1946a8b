"""Start-up failures a user can cause: one line that says what, never a traceback.

``dockyard verify`` runs the checks ``serve`` runs before it starts (the config, and the
folders and files it names), so a config that verifies does not then fail to serve on
those. ``serve`` names the key (or flag) at fault and exits 2; a listener that cannot
open (a busy port, an address this machine does not have) exits 1 with the address named.
Everything runs as a real ``python -m dockyard`` subprocess; permission cases run as
``nobody`` when the tests run as root (see ``cli_helpers``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from certs import server_pki
from cli_helpers import (
    assert_one_line_error,
    config_doc,
    dockyard,
    held_port,
    listening,
    open_folder,
    write_json,
)
from conftest import free_port

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder ``nobody`` may enter, for the permission cases."""
    with open_folder() as folder:
        yield folder


def serve(*args: str, unprivileged: bool = False) -> tuple[int, object]:
    """``dockyard serve ARGS --port P`` that must fail at once: (port, the finished run)."""
    port = free_port()
    proc = dockyard("serve", *args, "--port", str(port), timeout=30, unprivileged=unprivileged)
    return port, proc


def check_both(config: Path, *words: str, unprivileged: bool = False) -> None:
    """verify and serve both refuse ``config`` with exit 2 and one line holding ``words``."""
    checked = dockyard("verify", str(config), unprivileged=unprivileged)
    assert checked.returncode == 2, (checked.stdout, checked.stderr)
    assert_one_line_error(checked, *words)
    port, served = serve(str(config), unprivileged=unprivileged)
    assert served.returncode == 2, (served.stdout, served.stderr)
    assert_one_line_error(served, *words)
    assert not listening(port)


# -- item 6: verify and serve check the same things ------------------------------------------


@pytest.mark.parametrize("key", ["output", "audit"])
def test_missing_log_folder_fails_verify_and_serve_alike(tmp_path: Path, key: str) -> None:
    """log.output / log.audit in a folder that does not exist: exit 2 from both, key named."""
    missing = tmp_path / "no-such-folder"
    config = write_json(
        tmp_path / "config.json", config_doc(tmp_path / "data", **{key: str(missing / "x.log")})
    )
    check_both(config, f"log.{key}", str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("key", ["output", "audit"])
def test_unwritable_log_folder_fails_verify_and_serve_alike(shared: Path, key: str) -> None:
    """A log folder this user may not write in: exit 2 from both, key named."""
    logs = shared / "logs"
    logs.mkdir(mode=0o555)
    logs.chmod(0o555)
    (shared / "data").mkdir(mode=0o777)
    (shared / "data").chmod(0o777)
    config = write_json(
        shared / "config.json", config_doc(shared / "data", **{key: str(logs / "x.log")})
    )
    check_both(config, f"log.{key}", str(logs), unprivileged=True)


def test_log_output_that_is_a_folder_fails_verify_and_serve(tmp_path: Path) -> None:
    config = write_json(
        tmp_path / "config.json", config_doc(tmp_path / "data", output=str(tmp_path))
    )
    check_both(config, "log.output", "is a folder")


def test_examples_verify_or_fail_in_one_line() -> None:
    """Each shipped example verifies, or (its files not on this machine) says why in a line."""
    for example in sorted(EXAMPLES.glob("config-*")):
        proc = dockyard("verify", str(example))
        if proc.returncode != 0:
            assert proc.returncode == 2, (example, proc.stderr)
            assert_one_line_error(proc)
    operations = dockyard("verify", str(EXAMPLES / "config-operations.json"))
    if not Path("/var/log/dockyard").is_dir():  # a fresh machine: say which key to fix
        assert_one_line_error(operations, "log.output", "/var/log/dockyard")


# -- item 7: the listener --------------------------------------------------------------------


def test_busy_port_is_one_line_naming_the_address(tmp_path: Path) -> None:
    """Another process holds the port: exit 1, '127.0.0.1:P is already in use', no traceback."""
    with held_port() as sock:
        port = sock.getsockname()[1]
        proc = dockyard(
            "serve", "--address", "127.0.0.1", "--port", str(port), "--root", str(tmp_path / "d")
        )
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, f"127.0.0.1:{port} is already in use")
    assert not (tmp_path / "d").exists(), "a refused start must not create the root"


def test_address_not_on_this_machine(tmp_path: Path) -> None:
    """192.0.2.1 (TEST-NET-1) is no address of this machine: exit 1, the address named."""
    _, proc = serve("--address", "192.0.2.1", "--root", str(tmp_path / "d"))
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, "192.0.2.1:", "not an address of this machine")


def test_address_that_does_not_resolve(tmp_path: Path) -> None:
    _, proc = serve("--address", "nosuchhost.invalid", "--root", str(tmp_path / "d"))
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "http.address", "nosuchhost.invalid")


def test_privileged_port_as_a_user(shared: Path) -> None:
    """A port below the unprivileged start needs root: exit 1, said so in one line."""
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start <= 1:
        pytest.skip("this kernel lets every user bind every port")
    (shared / "d").mkdir(mode=0o777)
    (shared / "d").chmod(0o777)
    proc = dockyard(
        "serve", "--port", "1", "--root", str(shared / "d"), unprivileged=True, timeout=30
    )
    assert proc.returncode == 1, proc.stderr
    assert_one_line_error(proc, "127.0.0.1:1", "permission denied")


# -- item 7: the storage root ----------------------------------------------------------------


def test_root_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    for root in (afile, afile / "below"):
        _, proc = serve("--root", str(root))
        assert proc.returncode == 2, proc.stderr
        assert_one_line_error(proc, "--root", str(afile), "not a folder")


def test_root_that_cannot_be_created(tmp_path: Path) -> None:
    """/proc takes no new folders, whoever asks."""
    _, proc = serve("--root", "/proc/dockyard-test/data")
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "--root", "/proc/dockyard-test/data")


def test_unreadable_root(shared: Path) -> None:
    root = shared / "data"
    root.mkdir(mode=0o000)
    root.chmod(0o000)
    _, proc = serve("--root", str(root), unprivileged=True)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "--root", str(root))


def test_root_in_an_unwritable_folder_named_by_its_key(shared: Path) -> None:
    """The config's root cannot be created: verify and serve say storage.rootDirectory."""
    parent = shared / "locked"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)
    config = write_json(shared / "config.json", config_doc(parent / "data"))
    check_both(config, "storage.rootDirectory", str(parent), unprivileged=True)


def test_damaged_database_under_the_root(tmp_path: Path) -> None:
    """A cache.db that is not SQLite: one line naming the file, not a traceback."""
    db = tmp_path / "data" / "_dockyard" / "cache.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, it is a test" * 100)
    _, proc = serve("--root", str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, str(db))


# -- item 7: certificates and passwords ------------------------------------------------------


def tls_config(tmp_path: Path, cert: Path, key: Path) -> Path:
    doc = config_doc(tmp_path / "data")
    doc["http"]["tls"] = {"cert": str(cert), "key": str(key)}
    return write_json(tmp_path / "config.json", doc)


def test_certificate_that_is_not_pem(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    bad = tmp_path / "bad.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    check_both(tls_config(tmp_path, bad, pki.key), "http.tls")


def test_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    other = server_pki(tmp_path / "other")
    check_both(tls_config(tmp_path, pki.cert, other.key), "http.tls", "do not load as a pair")


def test_missing_key_file(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    check_both(tls_config(tmp_path, pki.cert, tmp_path / "absent.key"), "http.tls.key")


def test_unreadable_key_file(shared: Path) -> None:
    pki = server_pki(shared / "pki")
    (shared / "pki").chmod(0o755)
    pki.cert.chmod(0o644)
    pki.key.chmod(0o600)  # root's: nobody may not read it
    (shared / "data").mkdir(mode=0o777)
    (shared / "data").chmod(0o777)
    check_both(tls_config(shared, pki.cert, pki.key), "http.tls", unprivileged=True)


def htpasswd_config(folder: Path, htpasswd: Path) -> Path:
    doc = config_doc(folder / "data")
    doc["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    return write_json(folder / "config.json", doc)


def test_missing_htpasswd(tmp_path: Path) -> None:
    check_both(htpasswd_config(tmp_path, tmp_path / "absent"), "http.auth.htpasswd.path")


def test_unreadable_htpasswd(shared: Path) -> None:
    """The server would start and let nobody in: refuse it instead, naming the key."""
    htpasswd = shared / "htpasswd"
    htpasswd.write_text("alice:$2y$05$" + "a" * 53 + "\n")
    htpasswd.chmod(0o600)
    (shared / "data").mkdir(mode=0o777)
    (shared / "data").chmod(0o777)
    check_both(htpasswd_config(shared, htpasswd), "http.auth.htpasswd.path", unprivileged=True)


def test_valid_config_verifies_without_creating_anything(tmp_path: Path) -> None:
    """verify checks that the root and log files could be made; it makes none of them."""
    doc = config_doc(tmp_path / "data", output=str(tmp_path / "d.log"))
    doc["log"]["audit"] = str(tmp_path / "audit.log")
    config = write_json(tmp_path / "config.json", doc)
    proc = dockyard("verify", str(config))
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == ["config.json"]


def test_reload_into_a_missing_log_folder_keeps_the_running_config(tmp_path: Path) -> None:
    """On reload, the start-up checks hold too: the new file is refused, the server serves."""
    from conftest import start_server
    from ops_helpers import json_lines, ops_doc, signal_server, wait_for, write_json_atomically

    root, log_file, path = tmp_path / "data", tmp_path / "d.log", tmp_path / "config.json"
    doc = ops_doc(root, log={"output": str(log_file)})
    write_json_atomically(path, doc)
    server = start_server(root, config=path)
    try:
        doc["log"]["output"] = str(tmp_path / "no-such-folder" / "d.log")
        write_json_atomically(path, doc)
        signal_server(server, signal.SIGHUP)
        wait_for(lambda: "not reloaded" in log_file.read_text(), 10, "the refusal to be logged")
        refused = [d for d in json_lines(log_file.read_text()) if "not reloaded" in d["message"]]
        assert "log.output" in refused[0]["message"], refused
        assert server.proc is not None and server.proc.poll() is None
        assert httpx.get(f"{server.url}/v2/", timeout=5).status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in log_file.read_text()
