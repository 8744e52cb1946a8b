"""The ``extensions.sync`` config as zot writes it: accepted, checked, and the keys
dockyard does not act on named in a warning; plus the name-mapping rules themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dockyard.config.sync import SyncContent
from dockyard.ext.sync.rules import Rule, docker_hub_name, is_semver


def _verify(tmp_path: Path, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(path)], capture_output=True, text=True
    )


ZOT_EXAMPLE = {
    "distSpecVersion": "1.1.1",
    "extensions": {
        "sync": {
            "enable": True,
            "credentialsFile": "/etc/dockyard/sync-auth.json",
            "registries": [
                {
                    "urls": ["https://registry-1.docker.io"],
                    "onDemand": True,
                    "tlsVerify": True,
                    "maxRetries": 3,
                    "retryDelay": "5m",
                    "content": [{"prefix": "library/**"}],
                },
                {
                    "urls": ["https://r1.example:5000", "https://r2.example:5000"],
                    "onDemand": False,
                    "pollInterval": "6h",
                    "certDir": "/etc/dockyard/certs",
                    "onlySigned": True,
                    "preserveDigest": False,
                    "platforms": ["linux/amd64"],
                    "credentialHelper": "ecr",
                    "content": [
                        {"prefix": "apps/**", "tags": {"regex": "^v1\\..*", "semver": True}},
                        {"prefix": "team/**", "destination": "/mirror", "stripPrefix": True},
                    ],
                },
            ],
        }
    },
}


def test_zot_sync_config_loads_and_names_what_it_ignores(tmp_path: Path) -> None:
    done = _verify(tmp_path, ZOT_EXAMPLE)
    assert done.returncode == 0, done.stderr
    for key in ("onlySigned", "preserveDigest", "platforms", "credentialHelper"):
        assert f"registries[1].{key}" in done.stderr, done.stderr
    assert "registries[0]" not in done.stderr
    for implemented in ("urls", "content", "pollInterval", "certDir", "retryDelay", "tags"):
        assert f".{implemented}'" not in done.stderr, done.stderr


def test_bad_sync_values_are_refused_by_key(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(ZOT_EXAMPLE))
    bad["extensions"]["sync"]["registries"][1]["content"][0]["tags"]["regex"] = "("
    done = _verify(tmp_path, bad)
    assert done.returncode == 2 and "regex" in done.stderr
    bad["extensions"]["sync"]["registries"][1]["content"][0]["tags"]["regex"] = "x"
    bad["extensions"]["sync"]["registries"][0]["urls"] = ["ftp://nope"]
    done = _verify(tmp_path, bad)
    assert done.returncode == 2 and "urls" in done.stderr


def test_destination_and_strip_prefix_map_both_ways() -> None:
    strip = Rule(SyncContent(prefix="team/**", destination="/mirror", stripPrefix=True))
    assert strip.local_name("team/x") == "mirror/x"
    assert strip.upstream_name("mirror/x") == "team/x"
    assert strip.upstream_name("other/x") is None
    keep = Rule(SyncContent(prefix="team/**", destination="/mirror"))
    assert keep.local_name("team/x") == "mirror/team/x"
    assert keep.upstream_name("mirror/team/x") == "team/x"
    assert keep.upstream_name("mirror/x") is None
    plain = Rule(SyncContent(prefix="apps/*"))
    assert plain.upstream_name("apps/a") == "apps/a"
    assert plain.upstream_name("apps/a/b") is None
    assert plain.upstream_name("apps/../x") is None


def test_tag_filters_and_docker_hub_library() -> None:
    assert all(is_semver(t) for t in ("1.0.0", "v1.2.3", "1.2", "v2", "1.0.0-rc1+build.5"))
    assert not any(is_semver(t) for t in ("latest", "v1.x", "1.0.0.0", "stable-1"))
    assert docker_hub_name("registry-1.docker.io", "alpine") == "library/alpine"
    assert docker_hub_name("registry-1.docker.io", "bitnami/redis") == "bitnami/redis"
    assert docker_hub_name("127.0.0.1:5000", "alpine") == "alpine"
