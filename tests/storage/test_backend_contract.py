"""The backend interface's contract, held by every backend: the local filesystem and S3.

The S3 backend runs against a real S3 server (moto's, on loopback). Each test states a
promise storage relies on: a write appears whole, an acknowledged append survives and is
readable by another process or replica, a rollback is exact, a publish composes an upload
into one object, and two writers of one upload never both win.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from s3_helpers import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401 - the fixture

from dockyard.oci.digest import Digest
from dockyard.storage.backend import Appender, LinkUnsupported, StorageBackend
from dockyard.storage.localfs import LocalBackend
from dockyard.storage.paths import blob_path, shared_blob_path
from dockyard.storage.s3backend import S3Backend, S3Settings
from dockyard.storage.s3segments import MIN_PART, SEGMENT, ConcurrentAppend

Factory = Callable[[], StorageBackend]


@pytest.fixture(params=["local", "s3"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Factory]:
    """The root and a factory of backends over it: each call is another 'replica'."""
    if request.param == "local":
        root = tmp_path / "root"
        root.mkdir()
        return root, LocalBackend
    server: S3Server = request.getfixturevalue("s3_server")
    bucket, root = server.new_bucket(), Path("/srv/dockyard")
    return root, lambda: S3Backend(server.settings(bucket, "/dockyard/"), root)


def _new_upload(backend: StorageBackend, upload: Path) -> Appender:
    """An empty upload at ``upload``, opened for appending."""
    backend.make_dirs(upload.parent)
    backend.create(upload)
    return backend.open_append(upload)


def _blob(size: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(f"{seed}".encode()).digest(size) if size else b""


def test_write_read_stat_list_delete(replicas: tuple[Path, Factory]) -> None:
    root, make = replicas
    backend = make()
    repo = root / "team" / "app"
    backend.make_dirs(repo / "blobs" / "sha256")
    backend.write_atomic(repo / "index.json", b'{"manifests": []}')
    backend.write_atomic(repo / "blobs" / "sha256" / "ab", b"0123456789")
    st = backend.stat(repo / "blobs" / "sha256" / "ab")
    assert st is not None and st.st_size == 10
    assert backend.stat(repo / "missing") is None
    assert backend.exists(repo / "index.json") and not backend.exists(repo / "nope.json")
    assert backend.read_bytes(repo / "blobs" / "sha256" / "ab", limit=3) == b"0123"
    with backend.open_read(repo / "blobs" / "sha256" / "ab", 6) as f:
        assert f.read() == b"6789"
    names = {(e.name, e.is_dir) for e in backend.list(repo)}
    assert names == {("index.json", False), ("blobs", True)}
    assert [e.name for e in backend.list(root)] == ["team"]
    assert backend.list(root / "absent") == []
    backend.write_atomic(repo / "index.json", b"{}")
    assert backend.read_bytes(repo / "index.json") == b"{}"
    assert backend.delete(repo / "index.json") is True
    assert backend.delete(repo / "index.json") is False
    with pytest.raises(FileNotFoundError):
        backend.read_bytes(repo / "index.json")


def test_appends_survive_and_continue_on_another_replica(replicas: tuple[Path, Factory]) -> None:
    """Synced bytes are readable, and appendable, through a backend that did not write them."""
    root, make = replicas
    first, second = make(), make()
    upload = root / "r" / ".uploads" / "u1"
    first.make_dirs(upload.parent)
    first.create(upload)
    with pytest.raises(FileExistsError):
        first.create(upload)
    chunks = [_blob(100_000, 1), _blob(SEGMENT + 123, 2), _blob(MIN_PART - 1, 3), _blob(7, 4)]
    out = first.open_append(upload)
    out.write(chunks[0])
    out.sync()
    out.write(chunks[1])
    out.sync()
    out.close()
    st = second.stat(upload)
    assert st is not None and st.st_size == len(chunks[0]) + len(chunks[1])
    again = second.open_append(upload)
    again.write(chunks[2])
    again.sync()
    again.write(chunks[3])
    again.sync()
    again.close()
    whole = b"".join(chunks)
    assert first.read_bytes(upload) == whole
    with first.open_read(upload, len(whole) - 10) as f:
        assert f.read() == whole[-10:]


def test_truncate_rolls_back_exactly(replicas: tuple[Path, Factory]) -> None:
    root, make = replicas
    backend = make()
    upload = root / "r" / ".uploads" / "u2"
    out = _new_upload(backend, upload)
    data = _blob(SEGMENT + MIN_PART, 5)
    out.write(data)
    out.sync()
    out.write(b"a failed chunk")
    out.sync()
    out.truncate(len(data) - 1000)
    out.write(b"tail")
    out.sync()
    out.close()
    assert make().read_bytes(upload) == data[:-1000] + b"tail"


def test_unsynced_bytes_are_not_acknowledged(replicas: tuple[Path, Factory]) -> None:
    """What was written but never synced is gone after close (as after a crash), on S3;
    a filesystem may keep it, so only the synced prefix is promised."""
    root, make = replicas
    backend = make()
    upload = root / "r" / ".uploads" / "u3"
    out = _new_upload(backend, upload)
    out.write(b"kept")
    out.sync()
    out.write(b"never acknowledged")
    out.close()
    assert make().read_bytes(upload).startswith(b"kept")


def test_publish_composes_an_upload_into_one_object(replicas: tuple[Path, Factory]) -> None:
    root, make = replicas
    backend = make()
    upload = root / "r" / ".uploads" / "u4"
    blob = root / "r" / "blobs" / "sha256" / "cafe"
    backend.make_dirs(blob.parent)
    out = _new_upload(backend, upload)
    data = _blob(2 * SEGMENT + 4321, 6)
    for start in range(0, len(data), 1024 * 1024):
        out.write(data[start : start + 1024 * 1024])
        out.sync()
    out.close()
    backend.move_into_place(upload, blob)
    assert not backend.exists(upload)
    reader = make()
    assert reader.read_bytes(blob) == data
    st = reader.stat(blob)
    assert st is not None and st.st_size == len(data)
    leftovers = [e.name for e in reader.list(upload.parent)]
    assert leftovers == [], f"segments left behind: {leftovers}"


def test_copy_and_link(replicas: tuple[Path, Factory]) -> None:
    """A link either shares the bytes or says it cannot (then storage copies): on S3,
    a repository's own copy is not one another name may share."""
    root, make = replicas
    backend = make()
    src, dest, copied = root / "a" / "x", root / "b" / "x", root / "c" / "x"
    for path in (src, dest, copied):
        backend.make_dirs(path.parent)
    backend.write_atomic(src, b"shared bytes")
    try:
        backend.link(src, dest)
    except LinkUnsupported:
        assert isinstance(backend, S3Backend)
    else:
        assert isinstance(backend, LocalBackend)
        assert os.stat(dest).st_ino == os.stat(src).st_ino
    backend.copy(src, copied)
    assert backend.read_bytes(copied) == b"shared bytes"


def test_a_shared_copy_and_its_names(replicas: tuple[Path, Factory]) -> None:
    """A name linked to the root's shared copy reads, stats and copies as the copy;
    deleting a name never takes the copy; whether a name is left is ``referenced``.
    On S3 a name is a reference object (and a reference's reference names the copy);
    locally a hard link."""
    root, make = replicas
    backend = make()
    digest = Digest.parse("sha256:" + hashlib.sha256(b"layer bytes").hexdigest())
    shared = shared_blob_path(root, digest)
    one, two = blob_path(root / "one", digest), blob_path(root / "two", digest)
    plain = blob_path(root / "plain", digest)
    for path in (shared, one, two, plain):
        backend.make_dirs(path.parent)
    backend.write_atomic(shared, b"layer bytes")
    assert not backend.referenced(shared)
    backend.link(shared, one)
    backend.link(one, two)
    assert backend.referenced(shared)
    for name in (one, two):
        st = backend.stat(name)
        assert st is not None and st.st_size == len(b"layer bytes")
        assert st.st_ino == backend.stat(shared).st_ino  # type: ignore[union-attr]
        assert backend.read_bytes(name) == b"layer bytes"
        with backend.open_read(name, 6) as f:
            assert f.read() == b"bytes"
        found = backend.resolve(name)
        assert found is not None and found[0] == (shared if backend.by_reference else name)
        assert found[1].st_size == len(b"layer bytes")
    backend.copy(two, plain)
    assert backend.read_bytes(plain) == b"layer bytes"
    if backend.by_reference:
        with pytest.raises(LinkUnsupported):  # a repository's own copy is no shared copy
            backend.link(plain, blob_path(root / "three", digest))
    assert backend.delete(one)
    assert backend.referenced(shared) and backend.exists(shared)
    assert backend.delete(two)
    assert not backend.referenced(shared)
    assert backend.read_bytes(shared) == b"layer bytes"
    backend.link(shared, one)
    backend.delete(shared)
    assert backend.stat(one) is None or not backend.by_reference
    if backend.by_reference:  # a reference whose copy is gone is absent, never served
        assert backend.resolve(one) is None
        with pytest.raises(FileNotFoundError):
            backend.open_read(one)


def test_two_writers_of_one_upload_never_both_win(s3_server: S3Server) -> None:  # noqa: F811
    bucket, root = s3_server.new_bucket(), Path("/srv/dockyard")
    a = S3Backend(s3_server.settings(bucket, "dockyard"), root)
    b = S3Backend(s3_server.settings(bucket, "dockyard"), root)
    upload = root / "r" / ".uploads" / "u5"
    a.create(upload)
    first, second = a.open_append(upload), b.open_append(upload)
    first.write(b"one")
    first.sync()
    second.write(b"two")
    with pytest.raises(ConcurrentAppend):
        second.sync()
    assert b.read_bytes(upload) == b"one"


def test_keys_keep_the_oci_layout_under_the_prefix(s3_server: S3Server) -> None:  # noqa: F811
    bucket, root = s3_server.new_bucket(), Path("/srv/dockyard")
    backend = S3Backend(s3_server.settings(bucket, "/dockyard/"), root)
    backend.write_atomic(root / "team" / "app" / "oci-layout", b"{}")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dockyard/team/app/oci-layout"]
    with pytest.raises(ValueError):
        backend.key(Path("/elsewhere/x"))


def test_a_backend_travels_to_a_worker_process_as_its_settings(s3_server: S3Server) -> None:  # noqa: F811
    """GC and scrub run in worker processes: the backend pickles without its client."""
    bucket, root = s3_server.new_bucket(), Path("/srv/dockyard")
    host = s3_server.endpoint.removeprefix("http://")
    settings = S3Settings(bucket, "dockyard", "us-east-1", host, secure=False,
                          access_key=ACCESS_KEY, secret_key=SECRET_KEY)  # fmt: skip
    backend = S3Backend(settings, root)
    backend.write_atomic(root / "r" / "index.json", b"{}")
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.read_bytes(root / "r" / "index.json") == b"{}"
    assert len(pickle.dumps(backend)) < 2048


def test_regionendpoint_with_or_without_a_scheme() -> None:
    assert S3Settings("b", endpoint="s3.example:9000").endpoint_url() == "https://s3.example:9000"
    plain = S3Settings("b", endpoint="s3.example:9000", secure=False)
    assert plain.endpoint_url() == "http://s3.example:9000"
    assert S3Settings("b", endpoint="http://h:1", secure=True).endpoint_url() == "http://h:1"
    assert S3Settings("b").endpoint_url() is None
    assert "secret" not in repr(S3Settings("b", access_key="k", secret_key="secret"))
