"""Garbage collection: inline after a delete, periodic every ``gcInterval``, and offline.

Nothing younger than ``gcDelay`` (by inode change time) is removed, so a blob linked into a
repository a moment ago survives even when its bytes are old. ``gc: false`` removes nothing
on its own; ``dedupe: false`` keeps plain copies. The periodic pass also drops untagged
manifests older than ``retention.delay`` (keeping referrers of kept manifests) and upload
sessions idle longer than ``gcDelay``. ``dockyard gc CONFIG [--dry-run]`` is one pass, offline.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_server
from spec_helpers import (
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    start_upload,
)
from storage_helpers import (
    CACHE_DB,
    blob_file,
    blob_files,
    cache_paths,
    cache_rows,
    client_of,
    index_digests,
    inode,
    pull_all,
    push_layers_image,
    serving,
    wait_older_than,
    wait_until,
    write_config,
)

from dockyard.storage.paths import GC_PASS_KEY, lock_path


def all_gone(root: Path, repo: str, digests: list[str]) -> bool:
    return not any(blob_file(root, repo, d).exists() for d in digests)


def test_inline_gc_removes_unreachable_blobs_and_keeps_shared_ones(tmp_path: Path) -> None:
    """Deleting image X removes its own old blobs; Y and the base layer it shares stay."""
    root, repo = tmp_path / "data", "gc/app"
    base = random_blob(64 * 1024)
    with serving(root, gcDelay="2s") as server, client_of(server) as c:
        x = push_layers_image(c, repo, [base, random_blob(1000)], "x")
        y = push_layers_image(c, repo, [base, random_blob(1000)], "y")
        wait_older_than(blob_files(root), 2)
        resp = c.delete(f"/v2/{repo}/manifests/{x.digest}")
        assert resp.status_code == 202, f"DELETE X: {resp.status_code} {resp.text}"
        x_only = [x.blobs[0], x.blobs[2]]  # config and unique layer
        wait_until(lambda: all_gone(root, repo, x_only), 10, "X's config and layer removed")
        assert not blob_file(root, repo, x.digest).exists()
        for digest in [y.digest, *y.blobs]:
            assert blob_file(root, repo, digest).exists(), f"Y's blob {digest} was removed"
        assert blob_file(root, repo, x.blobs[1]).exists(), "the shared base layer was removed"
        pull_all(c, repo, y, "y")
        assert c.get(f"/v2/{repo}/manifests/x").status_code == 404
    for digest in x_only:
        assert cache_rows(root, digest) == [], f"record of removed {digest} left in cache.db"


def test_young_link_survives_inline_gc_until_gc_delay_passes(tmp_path: Path) -> None:
    """A blob HEAD-linked into a repo just now is young there: kept, removed after gcDelay."""
    root = tmp_path / "data"
    with serving(root, gcDelay="2s") as server, client_of(server) as c:
        a = push_layers_image(c, "yl/a", [random_blob(4096)], "v1")
        m = push_layers_image(c, "yl/b", [random_blob(500)], "m")
        n = push_layers_image(c, "yl/b", [random_blob(500)], "n")
        wait_older_than(blob_files(root), 2)
        shared = a.blobs[1]
        head = c.head(f"/v2/yl/b/blobs/{shared}")
        assert head.status_code == 200, f"HEAD link: {head.status_code}"
        linked = blob_file(root, "yl/b", shared)
        assert inode(linked) == inode(blob_file(root, "yl/a", shared))

        # Inline pass now: M's old blobs go (proof the pass ran), the young link stays.
        assert c.delete(f"/v2/yl/b/manifests/{m.digest}").status_code == 202
        wait_until(lambda: all_gone(root, "yl/b", m.blobs), 10, "M's blobs removed inline")
        assert linked.exists(), "a blob linked in less than gcDelay ago was collected"

        # Once it is older than gcDelay, the next pass (another delete) removes it from B only.
        wait_older_than([linked], 2)
        assert c.delete(f"/v2/yl/b/manifests/{n.digest}").status_code == 202
        wait_until(lambda: all_gone(root, "yl/b", n.blobs), 10, "N's blobs removed inline")
        wait_until(lambda: not linked.exists(), 5, "the now-old linked blob removed from B")
        assert os.stat(blob_file(root, "yl/a", shared)).st_nlink == 1
        # The pass drops the map's record after its worker removed the file: wait for it.
        kept = [f"yl/a/blobs/sha256/{shared[7:]}"]
        wait_until(lambda: cache_paths(root, shared) == kept, 5, "B's record dropped from the map")
        pull_all(c, "yl/a", a, "v1")


def test_gc_false_never_removes_anything(tmp_path: Path) -> None:
    """With gc: false nothing goes on its own: orphans, old untagged manifests, idle uploads.

    A second root of the same server has GC on: its old orphan going proves periodic
    passes ran with every delay passed, and the gc: false root was left alone by them.
    """
    root, repo, other = tmp_path / "data", "off/app", tmp_path / "other"
    delays = {"gcDelay": "1s", "gcInterval": "1s", "retention": {"delay": "1s"}}
    witness_root = {"rootDirectory": str(other), "gc": True, **delays}
    storage = {"gc": False, **delays, "subPaths": {"/on": witness_root}}
    with serving(root, **storage) as server, client_of(server) as c:
        x = push_layers_image(c, repo, [random_blob(800)], "x")
        untagged = push_image(c, repo)
        session = start_upload(c, repo)
        assert c.patch(session, content=b"partial").status_code == 202
        assert c.delete(f"/v2/{repo}/manifests/{x.digest}").status_code == 202
        push_image(c, "on/app", "v1")
        witness = push_blob(c, "on/app", random_blob(300))  # pushed last: old last
        wait_until(
            lambda: not blob_file(other, "on/app", witness).exists(),
            10,
            "a periodic pass removed the old orphan of the root whose GC is on",
        )
        for digest in x.blobs:
            assert blob_file(root, repo, digest).exists(), f"gc: false removed {digest}"
        assert untagged.digest in index_digests(root, repo)
        for digest in [untagged.digest, *untagged.blobs]:
            assert blob_file(root, repo, digest).exists(), f"gc: false removed {digest}"
        assert c.get(session).status_code == 204, "gc: false removed an idle upload"


def test_dedupe_false_keeps_separate_copies(tmp_path: Path) -> None:
    """dedupe: false: one inode per repo, nothing recorded, mount with from= copies (201)."""
    root = tmp_path / "data"
    data = random_blob(4096)
    with serving(root, dedupe=False) as server, client_of(server) as c:
        digest = push_blob(c, "nd/one", data)
        push_blob(c, "nd/two", data)
        resp = c.post(f"/v2/nd/three/blobs/uploads/?mount={digest}&from=nd/one")
        assert resp.status_code == 201, f"mount from=: {resp.status_code} {resp.text}"
        got = c.get(f"/v2/nd/three/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data
    files = [blob_file(root, r, digest) for r in ("nd/one", "nd/two", "nd/three")]
    assert len({inode(f) for f in files}) == 3, "dedupe: false still shares inodes"
    assert all(os.stat(f).st_nlink == 1 for f in files)
    assert not (root / CACHE_DB).exists() or cache_rows(root) == []


def test_retention_drops_old_untagged_manifests_keeps_tagged_and_referrers(
    tmp_path: Path,
) -> None:
    """Periodic pass: an old untagged manifest and its blobs go; tagged and referrers stay."""
    root, repo = tmp_path / "data", "ret/app"
    storage = {"gcDelay": "2s", "gcInterval": "1s", "retention": {"delay": "2s"}}
    with serving(root, **storage) as server, client_of(server) as c:
        tagged = push_image(c, repo, "v1")
        untagged = push_image(c, repo)
        referrer = push_manifest(
            c,
            repo,
            image_manifest(
                c, repo, subject=tagged.descriptor(), artifact_type="application/vnd.test.sig"
            ),
        )
        # Untagged children of a tagged index, and an untagged subject of a tagged referrer.
        children = [push_image(c, repo), push_image(c, repo)]
        multi = push_manifest(c, repo, index_manifest(children), "multi")
        subject = push_image(c, repo)
        signature = push_manifest(
            c,
            repo,
            image_manifest(c, repo, subject=subject.descriptor(), artifact_type="application/x"),
            "sig",
        )
        # A referrer of the doomed image, queried once so the server holds a referrers map.
        doomed_ref = push_manifest(
            c, repo, image_manifest(c, repo, subject=untagged.descriptor(), artifact_type="x/y")
        )
        before = c.get(f"/v2/{repo}/referrers/{untagged.digest}").json()["manifests"]
        assert [d["digest"] for d in before] == [doomed_ref.digest]
        assert untagged.digest in index_digests(root, repo)
        gone = [untagged.digest, *untagged.blobs, doomed_ref.digest]
        wait_until(
            lambda: untagged.digest not in index_digests(root, repo) and all_gone(root, repo, gone),
            12,
            "the old untagged manifest and its blobs removed",
        )
        listed = index_digests(root, repo)
        assert tagged.digest in listed, "the tagged manifest was dropped"
        assert referrer.digest in listed, "a referrer of a tagged manifest was dropped"
        pull_all(c, repo, tagged, "v1")
        pull_all(c, repo, referrer)
        for kept in (*children, multi, subject, signature):
            assert kept.digest in listed, f"{kept.digest} dropped though a tag needs it"
            pull_all(c, repo, kept)
        refs = c.get(f"/v2/{repo}/referrers/{tagged.digest}")
        assert refs.status_code == 200
        assert [d["digest"] for d in refs.json()["manifests"]] == [referrer.digest]
        assert c.get(f"/v2/{repo}/manifests/{untagged.digest}").status_code == 404
        after = c.get(f"/v2/{repo}/referrers/{untagged.digest}")
        assert after.status_code == 200 and after.json()["manifests"] == [], after.text


def test_moved_tag_keeps_the_old_image_pullable_by_digest(tmp_path: Path) -> None:
    """Moving a tag runs an inline pass; the old image, still listed by digest, stays whole."""
    root, repo = tmp_path / "data", "mv/app"
    with serving(root, gcDelay="2s") as server, client_of(server) as c:
        old = push_layers_image(c, repo, [random_blob(700)], "latest")
        stray = push_blob(c, repo, random_blob(300))  # an orphan: proof the pass ran
        wait_older_than(blob_files(root), 2)
        new = push_layers_image(c, repo, [random_blob(700)], "latest")
        wait_until(lambda: all_gone(root, repo, [stray]), 10, "inline pass after the tag moved")
        assert old.digest in index_digests(root, repo)
        pull_all(c, repo, old)
        pull_all(c, repo, new, "latest")


def test_periodic_gc_spares_blobs_younger_than_gc_delay(tmp_path: Path) -> None:
    """Blobs pushed before their manifest survive periodic passes while younger than gcDelay.

    An orphan pushed 2.5 s earlier goes first: the pass that removes it sees the image's
    blobs unreferenced too, and must keep them because they are young.
    """
    root, repo, delay = tmp_path / "data", "young/app", 5.0
    with serving(root, gcDelay="5s", gcInterval="1s") as server, client_of(server) as c:
        old = push_blob(c, repo, random_blob(400))
        wait_older_than([blob_file(root, repo, old)], 2.5, margin=0)
        built = image_manifest(c, repo, layers=2)
        young = [blob_file(root, repo, d) for d in built.blobs]
        born = max(os.stat(p).st_ctime for p in young)
        wait_until(lambda: not blob_file(root, repo, old).exists(), 10, "the old orphan removed")
        assert time.time() - born < delay, "too slow to tell: the young blobs grew old"
        for digest in built.blobs:
            assert blob_file(root, repo, digest).exists(), f"young orphan {digest} collected"
        push_manifest(c, repo, built, "v1")
        pull_all(c, repo, built, "v1")


@pytest.mark.parametrize("repo_state", ["repo-with-content", "new-repo"])
def test_periodic_gc_removes_idle_upload_session(tmp_path: Path, repo_state: str) -> None:
    """An upload session idle longer than gcDelay is removed by the periodic pass (then 404)."""
    root, repo = tmp_path / "data", "up/app"
    with serving(root, gcDelay="2s", gcInterval="1s") as server, client_of(server) as c:
        if repo_state == "repo-with-content":
            kept = push_image(c, repo, "v1")
        session = start_upload(c, repo)
        assert c.patch(session, content=b"some bytes").status_code == 202
        assert c.get(session).status_code == 204
        session_file = root / repo / ".uploads" / session.rstrip("/").rsplit("/", 1)[-1]
        assert session_file.is_file()
        wait_until(lambda: c.get(session).status_code == 404, 10, "idle upload session removed")
        assert not session_file.exists()
        if repo_state == "repo-with-content":
            pull_all(c, repo, kept, "v1")


def test_gc_keeps_everything_in_a_repo_whose_index_json_is_unreadable(tmp_path: Path) -> None:
    """GC fails closed: a truncated index.json (the root set) means nothing there is removed."""
    root = tmp_path / "data"
    with serving(root, gcDelay="1s", gcInterval="1s") as server, client_of(server) as c:
        broken = push_image(c, "bad/app", "v1")
        push_image(c, "zz/app", "v1")
        stray = push_blob(c, "zz/app", random_blob(200))
        wait_older_than(blob_files(root), 1)
        index = root / "bad/app/index.json"
        index.write_text(index.read_text()[:40])  # cut short, as a failed hand edit leaves it
        # Passes visit repositories in order: zz/app's orphan going means bad/app was seen.
        wait_until(lambda: all_gone(root, "zz/app", [stray]), 10, "a periodic pass ran")
        for digest in [broken.digest, *broken.blobs]:
            assert blob_file(root, "bad/app", digest).exists(), (
                f"gc removed {digest} from a repository whose index.json it cannot read"
            )


def run_gc(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dockyard gc CONFIG ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the root (not the cache) with its inode and size."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "_dockyard"]
        for name in filenames:
            st = os.stat(Path(dirpath) / name)
            found[str(Path(dirpath, name).relative_to(root))] = (st.st_ino, st.st_size)
    return found


def test_gc_command_dry_run_reports_and_run_removes(tmp_path: Path) -> None:
    """`dockyard gc --dry-run` lists orphans and removes nothing; `dockyard gc` frees them."""
    root, repo = tmp_path / "data", "cli/app"
    serve_cfg = write_config(tmp_path / "serve.json", root, gcDelay="1h")
    gc_cfg = write_config(tmp_path / "gc.json", root, gcDelay="1s")
    base = random_blob(32 * 1024)
    server = start_server(root, config=serve_cfg)
    try:
        with client_of(server) as c:
            x = push_layers_image(c, repo, [base, random_blob(3000)], "x")
            y = push_layers_image(c, repo, [base, random_blob(3000)], "y")
            assert c.delete(f"/v2/{repo}/manifests/{x.digest}").status_code == 202
    finally:
        server.stop()
    x_only = [x.blobs[0], x.blobs[2]]
    expected_freed = sum(os.stat(blob_file(root, repo, d)).st_size for d in x_only)
    wait_older_than([blob_file(root, repo, d) for d in x_only], 1)

    before = snapshot(root)
    dry = run_gc(gc_cfg, "--dry-run")
    assert dry.returncode == 0, f"gc --dry-run: {dry.returncode}\n{dry.stdout}\n{dry.stderr}"
    print(f"\n$ dockyard gc --dry-run\n{dry.stdout}")
    for digest in x_only:
        assert re.search(rf"would remove .*{re.escape(digest)}", dry.stdout), (
            f"dry run does not name {digest}:\n{dry.stdout}"
        )
    for digest in [y.digest, *y.blobs]:
        assert digest not in dry.stdout, f"dry run would remove Y's {digest}:\n{dry.stdout}"
    assert snapshot(root) == before, "gc --dry-run changed the root"

    real = run_gc(gc_cfg)
    assert real.returncode == 0, f"gc: {real.returncode}\n{real.stdout}\n{real.stderr}"
    print(f"$ dockyard gc\n{real.stdout}")
    assert all_gone(root, repo, x_only), f"gc left X's blobs:\n{real.stdout}"
    freed = re.search(r"(\d+) bytes freed\s*$", real.stdout)
    assert freed, f"gc does not print the bytes freed:\n{real.stdout}"
    assert int(freed[1]) == expected_freed
    for digest in x_only:
        assert cache_rows(root, digest) == []

    server = start_server(root, config=serve_cfg)
    try:
        with client_of(server) as c:
            pull_all(c, repo, y, "y")
    finally:
        server.stop()


def test_sigterm_cuts_a_waiting_gc_pass_short(tmp_path: Path) -> None:
    """A stop does not wait for a GC pass: GC is idempotent, the next pass resumes.

    The pass is held mid-way deterministically: this test holds the root's GC lock (the
    flock every pass takes first, across processes), so the inline pass a delete schedules
    waits on it. A server that waited for its passes before exiting never stopped.
    """
    root, repo = tmp_path / "data", "gc/app"
    with serving(root, gcDelay="1h") as server, client_of(server) as c:
        image = push_layers_image(c, repo, [random_blob(1000)], "x")
        lock = os.open(lock_path(root, GC_PASS_KEY), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            resp = c.delete(f"/v2/{repo}/manifests/{image.digest}")
            assert resp.status_code == 202, f"DELETE: {resp.status_code} {resp.text}"
            time.sleep(0.5)  # the inline pass is scheduled and polls for the lock
            assert server.proc is not None
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(8)
            except subprocess.TimeoutExpired:
                pytest.fail("SIGTERM did not stop a server whose GC pass was waiting")
            assert code == 0, f"exit {code}: {server.output()}"
            assert time.monotonic() - started < 8
        finally:
            os.close(lock)
    assert "Traceback" not in server.output(), server.output()
