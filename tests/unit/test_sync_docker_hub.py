"""Docker Hub's ``library/`` convention, from a config to the name asked of each upstream.

Official images live on Docker Hub as ``library/NAME`` while clients say ``NAME``. The
rule only applies on Docker Hub's hosts, which no test may reach, so the mapping is
checked here without a network: a config is loaded, its registries are built, and each
local name is mapped to the (upstream, name) pairs an on-demand miss would ask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.config.loader import load_config
from dockyard.ext.sync.registries import Registry, build_registries

HUB = "https://registry-1.docker.io"
LOCAL = "http://127.0.0.1:5000"


def _registry(tmp_path: Path, urls: list[str], content: list[dict[str, Any]]) -> Registry:
    entry = {"urls": urls, "onDemand": True, "content": content}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"extensions": {"sync": {"registries": [entry]}}}))
    config, _warnings = load_config(path)
    [registry] = build_registries(config)
    return registry


def _asked(registry: Registry, local: str) -> list[tuple[str, str]]:
    return [(up.url, name) for up, name in registry.sources_for(local)]


@pytest.mark.parametrize(
    ("local", "asked"),
    [
        # The issue's own config: a pull of ``alpine`` is a pull of ``library/alpine``.
        ("alpine", [(HUB, "library/alpine")]),
        ("library/alpine", [(HUB, "library/alpine")]),
        ("bitnami/redis", []),  # not under library/**
        ("alpine/x", []),
    ],
)
def test_library_prefix_on_docker_hub(tmp_path: Path, local: str, asked: list[Any]) -> None:
    registry = _registry(tmp_path, [HUB], [{"prefix": "library/**"}])
    assert _asked(registry, local) == asked


@pytest.mark.parametrize(
    ("local", "asked"),
    [
        ("alpine", [(HUB, "library/alpine"), (LOCAL, "alpine")]),
        ("library/alpine", [(HUB, "library/alpine"), (LOCAL, "library/alpine")]),
        ("bitnami/redis", [(HUB, "bitnami/redis"), (LOCAL, "bitnami/redis")]),
    ],
)
def test_every_name_with_a_hub_url_and_another(
    tmp_path: Path, local: str, asked: list[Any]
) -> None:
    """``library/`` is added for the Docker Hub URL only; the next URL gets the name as is."""
    registry = _registry(tmp_path, [HUB, LOCAL], [{"prefix": "**"}])
    assert _asked(registry, local) == asked


@pytest.mark.parametrize("url", ["https://docker.io", "https://index.docker.io", HUB])
def test_each_docker_hub_host(tmp_path: Path, url: str) -> None:
    registry = _registry(tmp_path, [url], [{"prefix": "library/**"}])
    assert _asked(registry, "nginx") == [(url, "library/nginx")]


def test_no_library_off_docker_hub(tmp_path: Path) -> None:
    """Any other registry keeps one-component names as they are, and does not read
    ``alpine`` as ``library/alpine``."""
    assert _asked(_registry(tmp_path, [LOCAL], [{"prefix": "**"}]), "alpine") == [(LOCAL, "alpine")]
    assert _asked(_registry(tmp_path, [LOCAL], [{"prefix": "library/**"}]), "alpine") == []


def test_destination_on_docker_hub(tmp_path: Path) -> None:
    """A renamed mirror of official images: local ``hub/alpine`` is ``library/alpine``."""
    content = [{"prefix": "library/**", "destination": "/hub", "stripPrefix": True}]
    registry = _registry(tmp_path, [HUB], content)
    assert _asked(registry, "hub/alpine") == [(HUB, "library/alpine")]
    assert _asked(registry, "alpine") == []
    whole = _registry(tmp_path, [HUB], [{"prefix": "**", "destination": "/hub"}])
    assert _asked(whole, "hub/alpine") == [(HUB, "library/alpine")]
