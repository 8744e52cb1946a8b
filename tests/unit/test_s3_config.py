"""zot's ``storageDriver`` keys, read into the settings each storage root is built from.

Table checks of the config side only; serving from a bucket is tested against moto's S3
server in ``tests/storage/test_s3_storage.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.app.storage_roots import root_settings
from dockyard.config import ConfigError, load_config


def _load(tmp_path: Path, config: dict[str, Any]) -> tuple[Any, list[str]]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return load_config(path)


def _driver(**more: Any) -> dict[str, Any]:
    return {"name": "s3", "bucket": "registry", "region": "us-east-1", **more}


def test_zot_keys_become_the_roots_s3_settings(tmp_path: Path) -> None:
    """zot's example keys (any case, as zot's viper reads them), the prefix without its
    slashes, the local rootDirectory kept for private state, subPaths with their own."""
    driver = {
        "name": "s3",
        "rootdirectory": "/dockyard/",
        "Region": "eu-west-1",
        "regionEndpoint": "minio.local:9000",
        "bucket": "registry",
        "secure": False,
        "skipverify": True,
        "accesskey": "AK",
        "secretkey": "SK",
    }
    sub = _driver(rootdirectory="edge", regionendpoint="https://s3.example")
    config, warnings = _load(
        tmp_path,
        {
            "storage": {
                "rootDirectory": str(tmp_path / "data"),
                "storageDriver": driver,
                "subPaths": {
                    "/edge": {"rootDirectory": str(tmp_path / "edge"), "storageDriver": sub},
                    "/plain": {"rootDirectory": str(tmp_path / "plain")},
                },
            }
        },
    )
    assert warnings == []
    default, subs = root_settings(config)
    assert default.root == tmp_path / "data"
    s3 = default.s3
    assert s3 is not None
    assert (s3.bucket, s3.prefix, s3.region) == ("registry", "dockyard", "eu-west-1")
    assert s3.endpoint_url() == "http://minio.local:9000"  # no scheme: secure decides
    assert (s3.secure, s3.skip_verify, s3.access_key, s3.secret_key) == (False, True, "AK", "SK")
    assert "SK" not in repr(s3)
    edge = subs["/edge"].s3
    assert edge is not None and edge.prefix == "edge"
    assert edge.endpoint_url() == "https://s3.example"  # a scheme is kept as written
    assert edge.access_key is None  # boto3's own chain: AWS_* variables, files, roles
    assert subs["/plain"].s3 is None


def test_unknown_driver_keys_are_warned_about(tmp_path: Path) -> None:
    """zot's S3 tuning keys dockyard does not act on load, each named in a warning."""
    _, warnings = _load(tmp_path, {"storage": {"storageDriver": _driver(chunksize=10485760)}})
    assert any("storage.storageDriver.chunksize" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("driver", "key"),
    [
        ({"name": "azure", "bucket": "b"}, "storage.storageDriver.name"),
        ({"name": "s3"}, "storage.storageDriver.bucket"),
        ({"name": "s3", "bucket": "  "}, "storage.storageDriver.bucket"),
        ({"bucket": "b"}, "storage.storageDriver.name"),
    ],
    ids=["other-driver", "no-bucket", "blank-bucket", "no-name"],
)
def test_a_driver_that_cannot_be_served_names_its_key(
    tmp_path: Path, driver: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _load(tmp_path, {"storage": {"storageDriver": driver}})


@pytest.mark.parametrize(
    "section",
    [
        {"extensions": {"sync": {"registries": [{"urls": ["https://r.example"]}]}}},
        {"proxy": {"remoteurl": "https://r.example"}},
    ],
    ids=["sync", "proxy"],
)
def test_mirroring_into_a_bucket_loads(tmp_path: Path, section: dict[str, Any]) -> None:
    """Mirroring writes through the storage backend, so a root on S3 may be a mirror."""
    config = {"storage": {"subPaths": {"/a": {"rootDirectory": "a", "storageDriver": _driver()}}}}
    _load(tmp_path, {**config, **section})


def test_redirect_is_off_unless_asked(tmp_path: Path) -> None:
    """``storageDriver.redirect`` (dockyard's own key, any case) reaches the root's
    settings; absent, blobs are streamed by the server."""
    config, warnings = _load(tmp_path, {"storage": {"storageDriver": _driver(Redirect=True)}})
    assert warnings == []
    default, _ = root_settings(config)
    assert default.s3 is not None and default.s3.redirect is True
    config, _ = _load(tmp_path, {"storage": {"storageDriver": _driver()}})
    default, _ = root_settings(config)
    assert default.s3 is not None and default.s3.redirect is False
    with pytest.raises(ConfigError, match=r"storageDriver\.redirect"):
        _load(tmp_path, {"storage": {"storageDriver": _driver(redirect="sometimes")}})
