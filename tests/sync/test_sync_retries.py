"""``maxRetries`` and ``retryDelay``: periodic sync retries an image that failed; on-demand
fetches never wait.

The upstream is ``broken_upstream.BrokenUpstream``, which answers a repository's manifest
requests with 503 a set number of times before serving them, and notes when each request
came. A pass tries every image once, then retries each failed one up to ``maxRetries``
times, each retry no sooner than ``retryDelay`` after that image's previous failure, so a
failing image never holds up the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving
from broken_upstream import Blob, BrokenUpstream, digest_of
from spec_helpers import MANIFEST_ACCEPT, assert_error
from sync_helpers import quiet_log, sync_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def broken() -> Iterator[BrokenUpstream]:
    upstream = BrokenUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def _image(upstream: BrokenUpstream, repo: str, tag: str) -> str:
    """An image of one config and one layer at ``repo:tag``; its manifest's digest."""
    config, layer = b"{}", os.urandom(2000)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(layer),
                "size": len(layer),
            }
        ],
    }
    for data in (config, layer):
        upstream.blobs[(repo, digest_of(data))] = Blob(data)
    return upstream.add_manifest(repo, tag, json.dumps(doc).encode(), OCI_MANIFEST)


def _config(tmp_path: Path, upstream: BrokenUpstream, repos: list[str], **entry: object) -> Path:
    registry = {
        "urls": [upstream.url],
        "content": [{"prefix": repo} for repo in repos],
        **entry,
    }
    top = {"storage": {"rootDirectory": str(tmp_path / "data")}}
    return sync_config(tmp_path / "config.json", [registry], **top)


def _attempts(upstream: BrokenUpstream, repo: str) -> list[float]:
    """When each attempt at ``repo:v1`` began: a pass starts an image with a manifest HEAD."""
    return upstream.times[f"HEAD manifest {repo}:v1"]


def _flaky_steady_dead(tmp_path: Path, upstream: BrokenUpstream) -> Path:
    """Three images: one that fails twice, one that works, one that always fails."""
    for repo in ("apps/flaky", "apps/steady", "apps/dead"):
        _image(upstream, repo, "v1")
    upstream.failures.update({"apps/flaky": 2, "apps/dead": 100})
    return _config(
        tmp_path,
        upstream,
        ["apps/flaky", "apps/steady", "apps/dead"],
        pollInterval="1h",
        maxRetries=2,
        retryDelay="2s",
    )


def _assert_retried(tmp_path: Path, upstream: BrokenUpstream) -> None:
    for repo in ("apps/flaky", "apps/dead"):
        attempts = _attempts(upstream, repo)
        assert len(attempts) == 3, (repo, attempts)
        gaps = [later - earlier for earlier, later in pairwise(attempts)]
        assert all(1.9 <= gap < 6 for gap in gaps), (repo, gaps)
    steady = _attempts(upstream, "apps/steady")
    assert len(steady) == 1
    assert steady[0] < _attempts(upstream, "apps/flaky")[1], "a retry delay held up apps/steady"
    assert (tmp_path / "data" / "apps/flaky" / "index.json").is_file()
    assert (tmp_path / "data" / "apps/steady" / "index.json").is_file()
    assert not (tmp_path / "data" / "apps/dead" / "index.json").exists()


def test_periodic_retries_max_retries_times_retry_delay_apart(
    tmp_path: Path, broken: BrokenUpstream
) -> None:
    """``maxRetries: 2``, ``retryDelay: 2s``, the server's first pass. An image that fails
    twice is copied on its second retry; one that always fails is tried three times and
    reported in one warning; one that works is copied before the first retry, not after
    the others' delays. The log has no error line and no traceback."""
    config = _flaky_steady_dead(tmp_path, broken)
    with serving(tmp_path / "data", config) as server:
        deadline = time.monotonic() + 60
        while "sync: pass over" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        server.stop()
        output = server.output()
    assert "3 images, 2 copied, 0 up to date, 1 failed" in output, output
    _assert_retried(tmp_path, broken)
    warnings = quiet_log(output)
    assert len(warnings) == 1, warnings
    assert "apps/dead:v1" in warnings[0]["message"]
    assert "after 3 attempts" in warnings[0]["message"]


def test_sync_once_reports_the_image_that_failed_its_retries(
    tmp_path: Path, broken: BrokenUpstream
) -> None:
    """``dockyard sync --once`` retries the same way, counts the failure in its summary and
    exits 1."""
    config = _flaky_steady_dead(tmp_path, broken)
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "sync", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 images, 2 copied, 0 up to date, 1 failed" in done.stdout, done.stdout
    _assert_retried(tmp_path, broken)
    assert "Traceback" not in done.stderr
    assert done.stderr.count("failed after 3 attempts") == 1, done.stderr


def test_on_demand_never_waits_for_retries(tmp_path: Path, broken: BrokenUpstream) -> None:
    """With ``maxRetries: 3`` and ``retryDelay: 5m``, an on-demand miss whose upstream
    fails is a prompt 404 after one request; the next read asks again, at once."""
    _image(broken, "apps/down", "v1")
    broken.failures["apps/down"] = 1
    config = _config(tmp_path, broken, ["apps/**"], onDemand=True, maxRetries=3, retryDelay="5m")
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        started = time.monotonic()
        miss = c.get("/v2/apps/down/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert time.monotonic() - started < 5
        assert_error(miss, 404, "NAME_UNKNOWN")
        assert broken.requests["GET manifest apps/down:v1"] == 1
        hit = c.get("/v2/apps/down/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert hit.status_code == 200
        assert broken.requests["GET manifest apps/down:v1"] == 2
        server.stop()
        warnings = quiet_log(server.output())
    assert len(warnings) == 1 and "503" in warnings[0]["message"], warnings


def test_an_index_whose_child_fails_is_a_warning_and_a_404(
    tmp_path: Path, broken: BrokenUpstream
) -> None:
    """The upstream serves an index but answers 503 for one of its children: the index is
    not stored, the client gets a 404, and the log says so in a warning, not an error. The
    next read, with the upstream well again, gets the index."""
    children = [_image(broken, "apps/idx", f"c{i}") for i in range(2)]
    sizes = [len(broken.manifests[("apps/idx", d)][0]) for d in children]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": n}
            for d, n in zip(children, sizes, strict=True)
        ],
    }
    body = json.dumps(index).encode()
    broken.add_manifest("apps/idx", "multi", body, index["mediaType"])
    broken.failures[f"apps/idx:{children[1]}"] = 1
    config = _config(tmp_path, broken, ["apps/**"], onDemand=True)
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        miss = c.get("/v2/apps/idx/manifests/multi", headers={"Accept": MANIFEST_ACCEPT})
        assert miss.status_code == 404
        # A child already verified may stay (untagged); the index is not published.
        tags = c.get("/v2/apps/idx/tags/list")
        assert tags.status_code == 404 or "multi" not in (tags.json()["tags"] or [])
        hit = c.get("/v2/apps/idx/manifests/multi", headers={"Accept": MANIFEST_ACCEPT})
        assert hit.status_code == 200 and hit.content == body
        server.stop()
        warnings = quiet_log(server.output())
    assert len(warnings) == 1 and children[1] in warnings[0]["message"], warnings
