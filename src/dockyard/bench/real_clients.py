"""``dockyard bench --client skopeo``: what users do, timed: a real client pushes and pulls.

The synthetic workloads drive the HTTP API the way the bench's own client chooses to; real
clients choose differently (skopeo pushes a layer as POST, one streamed PATCH without
Content-Range, then PUT, and pulls with its own buffer sizes). This mode runs the client
binary itself against each target, a push then a pull of one single-layer image per
round, targets interleaved with the order rotated each round, and reports per target the
median wall time, its ratio to the first target's, and the server's CPU seconds per GiB
summed over its whole process tree (``procstats``).

Each run gets a fresh HOME, so the client's blob-info cache never turns a push into a
cross-repository mount, and a fresh repository name. After each round the image is
deleted from the target (manifest, then blobs), so the next push uploads every byte again
even where the server deduplicates.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.bench.layer_image import TAG, LayerImage
from dockyard.bench.procstats import ServerWatch
from dockyard.bench.runner import Target, rotated
from dockyard.bench.stats import median

GiB = 1 << 30
#: Bound on one client command: a 1 GiB push on a busy machine takes well under a minute.
CLIENT_TIMEOUT = 900.0
#: The clients this mode can drive; any other name is refused.
KNOWN_CLIENTS = ("skopeo",)
PHASES = ("push", "pull")


@dataclass
class ClientRun:
    """One timed client command against one target."""

    client: str
    phase: str
    round: int
    target: int
    position: int
    wall_s: float
    bytes: int
    server_cpu_s: float | None
    client_cpu_s: float
    repo: str
    error: str | None = None

    @property
    def cpu_per_gib(self) -> float | None:
        if self.server_cpu_s is None or not self.bytes:
            return None
        return self.server_cpu_s / (self.bytes / GiB)


@dataclass
class PhaseSummary:
    """Medians of one client and phase on one target, and its ratio to the first target."""

    client: str
    phase: str
    target: int
    runs: int
    errors: int
    wall_s: float | None
    ratio: float | None
    paired_ratio: float | None
    cpu_per_gib: float | None
    wall_range: tuple[float, float] | None = None
    cpu_range: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Skopeo:
    """skopeo with its own HOME, policy and registries config, so nothing of the user's
    (credentials, mirrors, blob-info cache) takes part."""

    name = "skopeo"

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        policy = home / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        registries_d = home / "registries.d"
        registries_d.mkdir(exist_ok=True)
        conf = home / "registries.conf"
        conf.write_text("")
        (home / "run").mkdir(exist_ok=True)
        self.args = ["skopeo", "--policy", str(policy), "--registries.d", str(registries_d)]
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(conf),
        }

    def push(self, image: LayerImage, ref: str) -> list[str]:
        return [
            *self.args,
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{image.layout}:{TAG}",
            f"docker://{ref}",
        ]

    def pull(self, ref: str, out: Path) -> list[str]:
        return [
            *self.args,
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"oci:{out}:{TAG}",
        ]


def missing_clients(names: list[str]) -> list[str]:
    """Problems with the requested clients: unknown to this mode, or not installed."""
    problems = []
    for name in names:
        if name not in KNOWN_CLIENTS:
            known = ", ".join(KNOWN_CLIENTS)
            problems.append(f"--client {name}: not a client this mode drives ({known})")
        elif shutil.which(name) is None:
            problems.append(f"--client {name}: {name} is not installed")
    return problems


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(
    cmd: list[str], env: dict[str, str], watch: ServerWatch | None
) -> tuple[float, float | None, float, str | None]:
    """Run ``cmd``: (wall s, server CPU s or None, client CPU s, error or None)."""
    cpu0 = watch.cpu_seconds() if watch else None
    child0 = _children_cpu()
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=CLIENT_TIMEOUT)
        error = None
        if done.returncode != 0:
            error = f"exit {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {CLIENT_TIMEOUT:.0f} s"
    wall = time.monotonic() - start
    cpu1 = watch.cpu_seconds() if watch else None
    server = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return wall, server, _children_cpu() - child0, error


class CleanupFailed(Exception):
    """A target would not delete a round's image: the next push would skip its blobs and
    its figures would mean nothing, so the run stops."""


def _delete(url: str, path: str) -> None:
    """DELETE ``url + path``; a 404 (already gone) is fine, anything else stops the run."""
    request = urllib.request.Request(url + path, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise CleanupFailed(f"{url}: DELETE {path} answered {exc.code}") from exc
    except OSError as exc:
        raise CleanupFailed(f"{url}: DELETE {path} failed: {exc}") from exc


def remove_image(url: str, repo: str, image: LayerImage) -> None:
    """Unlist the manifest, then delete its blobs, so the next push sends every byte."""
    _delete(url, f"/v2/{repo}/manifests/{image.manifest_digest}")
    for digest in image.blob_digests:
        _delete(url, f"/v2/{repo}/blobs/{digest}")


def run_rounds(
    targets: list[Target],
    clients: list[str],
    image: LayerImage,
    rounds: int,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> list[ClientRun]:
    """Every client's push then pull against each target, ``rounds`` times, interleaved."""
    watches = {t.index: ServerWatch(t.pid) if t.pid else None for t in targets}
    runs: list[ClientRun] = []
    stamp = f"{os.getpid()}-{int(time.time())}"
    for rnd in range(rounds):
        for client_name in clients:
            for position, target in enumerate(rotated(targets, rnd)):
                host = target.url.removeprefix("http://")
                repo = f"bench-real/{client_name}-{stamp}-r{rnd}"
                ref = f"{host}/{repo}:{TAG}"
                home = Path(tempfile.mkdtemp(prefix="home-", dir=workdir))
                out = Path(tempfile.mkdtemp(prefix="pull-", dir=workdir))
                client = Skopeo(home)
                try:
                    for phase in PHASES:
                        cmd = client.push(image, ref) if phase == "push" else client.pull(ref, out)
                        wall, server, own, error = _timed(cmd, client.env, watches[target.index])
                        run = ClientRun(
                            client_name, phase, rnd, target.index, position, wall,
                            image.size if error is None else 0, server, own, repo, error,
                        )  # fmt: skip
                        runs.append(run)
                        if progress:
                            progress(_progress_line(run, target))
                        if error is not None:
                            break
                    remove_image(target.url, repo, image)
                finally:
                    shutil.rmtree(home, ignore_errors=True)
                    shutil.rmtree(out, ignore_errors=True)
    return runs


def _progress_line(run: ClientRun, target: Target) -> str:
    cpu = "" if run.cpu_per_gib is None else f", server {run.cpu_per_gib:.2f} CPU-s/GiB"
    what = f"round {run.round + 1} {run.client} {run.phase} {target.name}"
    return f"{what}: {run.error}" if run.error else f"{what}: {run.wall_s:.2f} s{cpu}"


def summarize(runs: list[ClientRun], targets: list[Target]) -> list[PhaseSummary]:
    """Per client, phase and target: median wall and CPU/GiB; ratios to the first target.

    A failed run is left out of the medians and counted instead. The paired ratio is the
    median over rounds of each round's wall over the first target's in the same round.
    """
    summaries = []
    keys = sorted({(r.client, r.phase) for r in runs}, key=lambda k: (k[0], PHASES.index(k[1])))
    for client, phase in keys:
        mine = [r for r in runs if (r.client, r.phase) == (client, phase)]
        base_walls = {r.round: r.wall_s for r in mine if r.target == 0 and r.error is None}
        base = median(list(base_walls.values())) if base_walls else None
        for target in targets:
            good = [r for r in mine if r.target == target.index and r.error is None]
            walls = [r.wall_s for r in good]
            cpus = [c for r in good if (c := r.cpu_per_gib) is not None]
            wall = median(walls) if walls else None
            pairs = [r.wall_s / base_walls[r.round] for r in good if r.round in base_walls]
            summaries.append(
                PhaseSummary(
                    client=client,
                    phase=phase,
                    target=target.index,
                    runs=len(good),
                    errors=sum(1 for r in mine if r.target == target.index and r.error),
                    wall_s=wall,
                    ratio=wall / base if wall is not None and base else None,
                    paired_ratio=median(pairs) if pairs else None,
                    cpu_per_gib=median(cpus) if cpus else None,
                    wall_range=(min(walls), max(walls)) if walls else None,
                    cpu_range=(min(cpus), max(cpus)) if cpus else None,
                )
            )
    return summaries


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _span(bounds: tuple[float, float] | None) -> str:
    return "-" if bounds is None else f"{bounds[0]:.2f}-{bounds[1]:.2f}"


def render(summaries: list[PhaseSummary], targets: list[Target], image: LayerImage) -> str:
    """A Markdown table: one row per client, phase and target."""
    names = {t.index: t.name for t in targets}
    size = f"{image.size / (1 << 20):,.0f} MiB"
    lines = [
        f"real clients, one single-layer image of {size}; ratio = wall / {names[0]}'s wall",
        "",
        "| client | phase | target | runs | wall s (median) | range | ratio | paired "
        "| server CPU-s/GiB (median) | range |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        wall_range = _span(s.wall_range)
        cpu_range = _span(s.cpu_range)
        runs = f"{s.runs}" + (f" ({s.errors} failed)" if s.errors else "")
        lines.append(
            f"| {s.client} | {s.phase} | {names[s.target]} | {runs} | {_fmt(s.wall_s, '.2f')} "
            f"| {wall_range} | {_fmt(s.ratio, '.2f', 'x')} | {_fmt(s.paired_ratio, '.2f', 'x')} "
            f"| {_fmt(s.cpu_per_gib, '.2f')} | {cpu_range} |"
        )
    return "\n".join(lines)


def to_json(
    runs: list[ClientRun],
    summaries: list[PhaseSummary],
    targets: list[Target],
    image: LayerImage,
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        **meta,
        "mode": "real-clients",
        "image": {
            "size": image.size,
            "manifest": image.manifest_digest,
            "layer": image.layer_digest,
        },
        "targets": [asdict(t) for t in targets],
        "errors": sum(1 for r in runs if r.error),
        "runs": [{**asdict(r), "cpu_per_gib": r.cpu_per_gib} for r in runs],
        "summary": [asdict(s) for s in summaries],
    }
