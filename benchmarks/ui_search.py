"""The search API's latency and the web UI's home page render time on a big store.

    python benchmarks/ui_search.py --repos 1000
    python benchmarks/ui_search.py --repos 10000

Writes ``--repos`` repositories (3 tagged images each) as OCI layouts, serves them with
``extensions.search`` and ``extensions.ui`` on, waits for the index, then:

- times search queries end to end over HTTP with a keep-alive client (p50/p95/p99);
- loads the home page in headless chromium (Debian's chromium and chromium-driver) from
  a fresh navigation each round, and reads the time from navigation start to the app's
  first finished render of the repository list (``performance.now()`` when it stamps
  ``data-rendered``): HTML, script, stylesheet, session check and the GraphQL query.

The targets: home page under 1 s with 1,000 repositories, a search query under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import percentile, start_dockyard, write_repo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser_helpers import chrome, wait

SEARCH = "/v2/_zot/ext/search"
QUERIES = {
    "GlobalSearch name, first page of 50": (
        '{ GlobalSearch(query: "repo12", requestedPage: {limit: 50, offset: 0, '
        "sortBy: RELEVANCE}) { Page { TotalCount } Repos { Name LastUpdated Size "
        "Platforms { Os Arch } NewestImage { Tag IsSigned } } } }"
    ),
    "GlobalSearch all, sorted by size, page 3": (
        '{ GlobalSearch(query: "", requestedPage: {limit: 50, offset: 100, sortBy: SIZE}) '
        "{ Page { TotalCount } Repos { Name Size NewestImage { Tag } } } }"
    ),
    "RepoListWithNewestImage, first page of 50": (
        "{ RepoListWithNewestImage(requestedPage: {limit: 50}) "
        "{ Page { TotalCount } Results { Name NewestImage { Tag Digest } } } }"
    ),
    "ExpandedRepoInfo of one repository": (
        '{ ExpandedRepoInfo(repo: "org7/repo7") { Summary { Name Size } '
        "Images { Tag Digest Size Manifests { Digest Layers { Digest Size } } } } }"
    ),
    "Image by tag": '{ Image(image: "org7/repo7:t1") { Digest Size Manifests { Digest } } }',
}


def _wait_indexed(client: httpx.Client, repos: int) -> float:
    started = time.monotonic()
    query = '{ GlobalSearch(query: "") { Page { TotalCount } } }'
    while True:
        got = client.post(SEARCH, json={"query": query}).json()
        if got["data"]["GlobalSearch"]["Page"]["TotalCount"] == repos:
            return time.monotonic() - started
        time.sleep(0.05)


def _time_queries(client: httpx.Client, rounds: int) -> None:
    for name, query in QUERIES.items():
        client.post(SEARCH, json={"query": query})  # warm
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            resp = client.post(SEARCH, json={"query": query})
            samples.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200 and "errors" not in resp.json(), resp.text
        print(
            f"  {name}: p50 {percentile(samples, 50):.1f} ms, "
            f"p95 {percentile(samples, 95):.1f} ms, p99 {percentile(samples, 99):.1f} ms"
        )


def _time_home(url: str, rounds: int, repos: int) -> None:
    driver = chrome()
    try:
        for label, path in (
            ("home", "/"),
            ("home sorted by size, page 20", "/#/?sort=size&page=20"),
        ):
            samples = []
            for _ in range(rounds):
                driver.get("about:blank")
                driver.get(url + path)
                stamp = wait(
                    driver, lambda d: d.execute_script("return document.body.dataset.rendered")
                )
                rows = driver.execute_script(
                    "return document.querySelectorAll('#repo-table .repo-row').length"
                )
                assert rows == min(50, repos), rows
                samples.append(float(stamp))
            print(
                f"  {label}: median {statistics.median(samples):.0f} ms, "
                f"max {max(samples):.0f} ms over {rounds} fresh loads"
            )
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200, help="timed runs per query")
    parser.add_argument("--loads", type=int, default=10, help="timed page loads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for i in range(args.repos):
            write_repo(root / f"org{i % 100}" / f"repo{i}", images=3)
        config = {
            "storage": {"rootDirectory": str(root)},
            "extensions": {"search": {"enable": True}, "ui": {"enable": True}},
        }
        proc, url = start_dockyard(config, Path(tmp))
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                built = _wait_indexed(client, args.repos)
                print(f"repos={args.repos} (3 images each): index ready {built:.2f}s after start")
                print("search queries, end to end over HTTP:")
                _time_queries(client, args.rounds)
            print("web UI, navigation start to the rendered repository list:")
            _time_home(url, args.loads, args.repos)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
