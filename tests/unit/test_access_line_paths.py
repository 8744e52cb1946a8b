"""The access line takes a shortcut past ``LogRecord`` only under the server's own logging
set-up; any other set-up (a filter, a capture handler) sees the line as a record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dockyard.app.logs import AccessLogger, BatchedStreamHandler, JsonFormatter, access_log


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "access.log"
    stream = path.open("a", encoding="utf-8")
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    root.handlers, root.level = [handler], logging.INFO
    try:
        yield path
    finally:
        handler.flush()
        root.handlers, root.level = saved, level
        stream.close()


def _log_one() -> None:
    request = make_mocked_request("GET", "/v2/", headers={"X-Request-Id": "req-1"})
    AccessLogger(access_log, "").log(request, web.Response(status=200), 0.0125)
    logging.getLogger().handlers[0].flush()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_direct_line_has_every_field_of_a_record_line(log_file: Path) -> None:
    _log_one()
    (line,) = _lines(log_file)
    assert line["logger"] == "dockyard.access" and line["level"] == "info"
    assert str(line["time"]).endswith("Z")
    assert line["request_id"] == "req-1" and line["status"] == 200
    assert line["duration_ms"] == 12.5


def test_a_filter_on_the_access_logger_sees_every_line(log_file: Path) -> None:
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return True

    access_log.addFilter(keep)
    try:
        _log_one()
    finally:
        access_log.removeFilter(keep)
    assert [record.getMessage() for record in seen] == ["GET /v2/ 200"]
    (line,) = _lines(log_file)
    assert line["request_id"] == "req-1"
