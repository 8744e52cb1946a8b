"""``dockyard bench URL [URL ...]``: load-test registries side by side, report ratios.

With several URLs every workload runs against each in turn, order rotated, and the report
gives each target's median as a ratio to the first URL's. Exit status: 0 when every
request succeeded, 1 when any failed (a target that is down fails every workload), 2 for
bad arguments.

With ``--client skopeo`` it runs a real client instead of the synthetic workloads: a push
then a pull of one single-layer image per round against each target (see
``bench/real_clients.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.util.plural import count

EXIT_ERRORS = 1
EXIT_USAGE = 2


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from dockyard.bench import report, workloads
    from dockyard.bench.client import check_loopback
    from dockyard.bench.procstats import ServerWatch
    from dockyard.bench.runner import Options, Runner, Target

    if args.list:
        for w in workloads.select(None, args.quick):
            print(f"{w.name:24} {w.metric.label:7} {json.dumps(w.params())}")
        return 0
    if not args.urls:
        print("dockyard bench: give at least one URL", file=sys.stderr)
        return EXIT_USAGE
    pids: list[int | None] = list(args.pid or [])
    names: list[str] = list(args.name or [])
    problems = []
    if args.client:
        from dockyard.bench.real_clients import missing_clients

        problems += missing_clients(args.client)
        if args.workloads:
            problems.append("--workloads and --client are two modes: give one")
    if pids and len(pids) != len(args.urls):
        problems.append(f"{len(pids)} --pid for {len(args.urls)} URLs: give one per URL, in order")
    if names and len(names) != len(args.urls):
        problems.append(f"{len(names)} --name for {len(args.urls)} URLs: give one per URL")
    urls = []
    for url in args.urls:
        try:
            urls.append(check_loopback(url))
        except ValueError as exc:
            problems.append(str(exc))
    for pid in pids:
        if pid is not None and not ServerWatch(pid).alive():
            problems.append(f"--pid {pid}: no such process")
    try:
        chosen = workloads.select(args.workloads.split(",") if args.workloads else None, args.quick)
    except ValueError as exc:
        problems.append(str(exc))
    if args.size_mib is not None and not args.client:
        problems.append("--size-mib sets the real clients' image: it needs --client")
    if problems:
        for problem in problems:
            print(f"dockyard bench: {problem}", file=sys.stderr)
        return EXIT_USAGE

    repeat = args.repeat or (1 if args.quick else 3)
    targets = [
        Target(
            index=i,
            url=url,
            name=names[i] if names else url.removeprefix("http://"),
            pid=pids[i] if pids else None,
        )
        for i, url in enumerate(urls)
    ]
    if args.client:
        return _run_real_clients(args, targets, repeat)
    options = Options(repeat=repeat, verify=args.verify, progress=not args.no_progress)
    started = datetime.now(UTC)
    clock = time.monotonic()
    outcome = asyncio.run(Runner(targets, chosen, options).run())
    summaries = report.summarize(outcome.runs, chosen, len(targets))
    print(report.render(summaries, targets, outcome, repeat))
    meta: dict[str, Any] = {
        "tool": "dockyard bench",
        "command": sys.argv,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - clock, 1),
        "quick": args.quick,
        "repeat": repeat,
        "verify": args.verify,
    }
    data = report.to_json(summaries, targets, chosen, outcome, meta)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    if data["errors"]:
        errors = count(data["errors"], "error")
        print(f"dockyard bench: {errors} (see the JSON runs)", file=sys.stderr)
        return EXIT_ERRORS
    return 0


def _run_real_clients(args: argparse.Namespace, targets: list[Any], repeat: int) -> int:
    """The real-client mode: the image is made once (cached), then rounds of push + pull."""
    import tempfile

    from dockyard.bench import real_clients
    from dockyard.bench.layer_image import layer_image

    size_mib = args.size_mib or (16 if args.quick else 1024)
    cache = args.image_dir or Path(tempfile.gettempdir()) / "dockyard-bench-images"
    started = datetime.now(UTC)
    clock = time.monotonic()
    image = layer_image(cache, size_mib)

    def progress(line: str) -> None:
        if not args.no_progress:
            print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as work:
        try:
            runs = real_clients.run_rounds(
                targets, args.client, image, repeat, Path(work), progress
            )
        except real_clients.CleanupFailed as exc:
            print(
                f"dockyard bench: {exc}; each round's image must be deleted so the next "
                "push sends every byte (docker-registry: storage.delete.enabled: true)",
                file=sys.stderr,
            )
            return EXIT_ERRORS
    summaries = real_clients.summarize(runs, targets)
    print(real_clients.render(summaries, targets, image))
    meta: dict[str, Any] = {
        "tool": "dockyard bench",
        "command": sys.argv,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - clock, 1),
        "repeat": repeat,
        "clients": args.client,
    }
    data = real_clients.to_json(runs, summaries, targets, image, meta)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    if data["errors"]:
        print(
            f"dockyard bench: {count(data['errors'], 'error')} (see the JSON runs)", file=sys.stderr
        )
        return EXIT_ERRORS
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="load-test registries side by side (ratios to the first URL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("urls", nargs="*", metavar="URL", help="registry base URL (loopback only)")
    p.add_argument(
        "--pid", type=int, action="append", help="server PID per URL, in order: CPU and RSS"
    )
    p.add_argument("--name", action="append", help="label per URL, in order, for the tables")
    p.add_argument("--workloads", help="comma-separated names or globs (see --list)")
    p.add_argument("--repeat", type=_positive, help="repetitions (default 3, 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sizes: two targets in < 1 min")
    p.add_argument("--json", type=Path, help="write every raw result and the summary here")
    p.add_argument(
        "--verify", action="store_true", help="hash pulled blobs (costs client CPU; off)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument(
        "--client",
        action="append",
        help="real-client mode: push and pull an image with this client (skopeo); repeatable",
    )
    p.add_argument(
        "--size-mib", type=_positive, help="real-client image layer size (default 1024; 16 quick)"
    )
    p.add_argument(
        "--image-dir", type=Path, help="where the real-client image is made once and kept"
    )
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.set_defaults(func=run)
