"""Every name of the on-disk layout, and nowhere else (distribution's ``paths.go``).

A storage root holds one OCI image layout per repository plus the server's private
folder::

    ROOT/<repo>/oci-layout                      {"imageLayoutVersion": "1.0.0"}
    ROOT/<repo>/index.json                      tags and untagged manifests
    ROOT/<repo>/blobs/<alg>/<hex>               blobs and manifests, by digest
    ROOT/<repo>/.uploads/<uuid>                 an upload session's bytes
    ROOT/<repo>/.uploads/.<uuid>.owner          who opened that session
    ROOT/<repo>/.uploads/.<uuid>.pin            a stored copy's bytes, held while a
                                                duplicate upload of them is hashed
    ROOT/_dockyard/cache.db                     dedupe map (digest -> blob paths)
    ROOT/_dockyard/blobs/<alg>/<hex>            object storage with dedupe: a digest's
                                                bytes, stored once per root
    ROOT/_dockyard/blobs/<alg>/.<hex>.refs/<repo>/blobs/<alg>/<hex>
                                                one empty object per repository naming it
    ROOT/_dockyard/verified.db                  verified stamps
    ROOT/_dockyard/quarantine/<repo>/<alg>/<hex>.<ns>   blobs that failed their digest
    ROOT/_dockyard/.readyz-<pid>-<token>        the readiness probe's scratch file
    ROOT/_dockyard/locks/<sha256 of key>        a repository's cross-process lock file
                                                (a claim stripe's names the digest
                                                being uploaded, see ``upload_claims``)
    ROOT/_dockyard/changes                      the change counter workers share
    ROOT/_dockyard/repositories                 names of new repositories, one a line
    ROOT/_dockyard/leader                       the background-work lease (an flock)
    ROOT/_dockyard/apikeys/<sha256>.json        an API key's record (replicas on a bucket)
    ROOT/_dockyard/apikeys/<sha256>.used        when that key was last used

Paths are built from a root (or a repository folder under it) so that a backend which is
not a filesystem maps each one to a key by its part below the root: the same names work
as object keys under a bucket prefix.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from dockyard.oci.digest import Digest, InvalidDigest

BLOBS_DIR = "blobs"
UPLOADS_DIR = ".uploads"
OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
#: The server's private folder under each root (0700, see ``dockyard.private``).
PRIVATE_DIR = "_dockyard"
DEDUPE_DB = "cache.db"
STAMPS_DB = "verified.db"
QUARANTINE_DIR = "quarantine"
LOCKS_DIR = "locks"
CHANGES_FILE = "changes"
REPOSITORIES_LOG = "repositories"
LEADER_FILE = "leader"
APIKEYS_DIR = "apikeys"
#: The lock key of a root's GC passes: not a repository name (none starts with "/").
GC_PASS_KEY = "/gc"
#: How many locks publishes are spread over (by digest): a lock file each, so a fixed
#: number, never one per blob ever pushed.
PUBLISH_STRIPES = 4096
#: How many claims of digests being uploaded are spread over (see ``upload_claims``).
CLAIM_STRIPES = 4096
#: Folders inside a repository that are never repositories themselves.
NOT_REPOSITORIES = frozenset({BLOBS_DIR, UPLOADS_DIR})

#: A session's own parts beside its file: its owner record, its pinned stored copy.
_SESSION_PART = re.compile(r"^\.([0-9a-f]{32})\.(?:owner|pin)\Z")


def blobs_dir(repo_dir: Path) -> Path:
    return repo_dir / BLOBS_DIR


def blob_path(repo_dir: Path, digest: Digest) -> Path:
    return repo_dir / BLOBS_DIR / digest.algorithm / digest.hex


def blob_digest(alg_dir: str, name: str) -> Digest | None:
    """The digest a file ``blobs/<alg_dir>/<name>`` holds; None for temp files and strays."""
    try:
        return Digest.parse(f"{alg_dir}:{name}")
    except InvalidDigest:
        return None


def repo_of_blob(root: Path, blob: Path) -> str:
    """The repository holding ``ROOT/<repo>/blobs/<alg>/<hex>``."""
    return blob.relative_to(root).parent.parent.parent.as_posix()


def index_path(repo_dir: Path) -> Path:
    return repo_dir / INDEX_FILE


def oci_layout_path(repo_dir: Path) -> Path:
    return repo_dir / OCI_LAYOUT_FILE


def uploads_dir(repo_dir: Path) -> Path:
    return repo_dir / UPLOADS_DIR


def upload_path(repo_dir: Path, session_id: str) -> Path:
    return repo_dir / UPLOADS_DIR / session_id


def owner_record_path(session_path: Path) -> Path:
    return session_path.with_name(f".{session_path.name}.owner")


def pin_path(session_path: Path) -> Path:
    """A hard link to a stored copy, made while a duplicate upload of it is hashed."""
    return session_path.with_name(f".{session_path.name}.pin")


def session_part_of(name: str) -> str | None:
    """The session id whose owner record or pin a file of ``.uploads/`` is; None if it
    is not one (a session file itself)."""
    match = _SESSION_PART.match(name)
    return match[1] if match else None


def shared_blobs_dir(root: Path) -> Path:
    """Where object storage keeps each deduplicated digest once (``storage.dedupe``)."""
    return root / PRIVATE_DIR / BLOBS_DIR


def shared_blob_path(root: Path, digest: Digest) -> Path:
    """The root's one stored copy of ``digest`` on object storage, which repositories'
    reference objects name: derived from the digest, so no cache is needed to find it."""
    return shared_blobs_dir(root) / digest.algorithm / digest.hex


def entries_dir(root: Path, digest: Digest) -> Path:
    """Where the entries of the references naming the shared copy of ``digest`` are:
    one empty object per reference, named by the reference's path under the root."""
    return shared_blobs_dir(root) / digest.algorithm / f".{digest.hex}.refs"


def entry_of(root: Path, path: Path) -> tuple[Digest, Path] | None:
    """(the digest, the reference it stands for) of an entry found under the shared
    store; None for a shared copy itself or anything that is not an entry in the form
    ``link`` writes (the reference ``<repo>/blobs/<alg>/<hex>`` of that same digest,
    no ``.`` or ``..`` in it): only such a name is ever looked up or removed."""
    parts = path.relative_to(shared_blobs_dir(root)).parts
    if len(parts) < 6 or not (parts[1].startswith(".") and parts[1].endswith(".refs")):
        return None
    digest = blob_digest(parts[0], parts[1][1 : -len(".refs")])
    reference = parts[2:]
    if digest is None or reference[-3:] != (BLOBS_DIR, digest.algorithm, digest.hex):
        return None
    if any(part in ("", ".", "..") for part in reference):
        return None
    return digest, root.joinpath(*reference)


def private_dir(root: Path) -> Path:
    return root / PRIVATE_DIR


def dedupe_db(root: Path) -> Path:
    return root / PRIVATE_DIR / DEDUPE_DB


def stamps_db(root: Path) -> Path:
    return root / PRIVATE_DIR / STAMPS_DB


def quarantine_path(root: Path, repo: str, digest: Digest, time_ns: int) -> Path:
    folder = root / PRIVATE_DIR / QUARANTINE_DIR / repo / digest.algorithm
    return folder / f"{digest.hex}.{time_ns}"


def probe_path(root: Path, pid: int, token: str) -> Path:
    return root / PRIVATE_DIR / f".readyz-{pid}-{token}"


def locks_dir(root: Path) -> Path:
    return root / PRIVATE_DIR / LOCKS_DIR


def publish_key(digest: Digest) -> str:
    """The lock key publishes of ``digest`` take turns on; no repository name has a
    leading slash, so it never meets a repository's lock."""
    return f"/publish/{int(digest.hex[:3], 16) % PUBLISH_STRIPES}"


def claim_key(digest: Digest) -> str:
    """The lock key an upload of ``digest`` claims while it stores the bytes; like a
    publish's, never a repository's name."""
    return f"/claim/{int(digest.hex[:4], 16) % CLAIM_STRIPES}"


def lock_path(root: Path, key: str) -> Path:
    """The lock file of ``key`` (a repository name): named by its hash, so any key makes
    one flat, fixed-length file name."""
    return locks_dir(root) / hashlib.sha256(key.encode()).hexdigest()


def changes_path(root: Path) -> Path:
    return root / PRIVATE_DIR / CHANGES_FILE


def repositories_log(root: Path) -> Path:
    return root / PRIVATE_DIR / REPOSITORIES_LOG


def leader_path(root: Path) -> Path:
    return root / PRIVATE_DIR / LEADER_FILE


def apikeys_dir(root: Path) -> Path:
    """The API keys of replicas on one bucket: an object per key, named by its hash."""
    return root / PRIVATE_DIR / APIKEYS_DIR
