"""Logs as JSON lines, one object per line, and one access line per request.

JSON because log shippers (Loki, Elasticsearch, journald exporters) then need no parsing
rule, and every field of an access line (request id, status, duration, bytes, user) stays
a field one can filter on; zot logs JSON too. The access line is written by aiohttp's
access-logger hook, which runs after the response has been sent, so its duration and
byte counts cover the whole transfer (a blob served with sendfile included), not only the
handler.

Each request gets an id: the client's ``X-Request-Id`` when it is sane, else a new one.
It goes back in the response's ``X-Request-Id`` header and into the access line, so a
user's report ("my push failed, id 3f2a...") leads straight to the server's line.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import select
import stat
import sys
import time
from typing import Any, TextIO, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.config import Config
from dockyard.web.app_keys import AFTER_RESPONSE
from dockyard.web.request_keys import IDENTITY
from dockyard.web.transfer import bytes_received, bytes_sent

#: zot's level names -> the standard library's.
LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

REQUEST_ID_HEADER = "X-Request-Id"
#: Request keys other layers share: the id set here; the user comes from the ``Identity``
#: the auth middleware leaves under ``dockyard.identity``.
REQUEST_ID_KEY = web.RequestKey("dockyard.request_id", str)
#: Why the request was refused as the client's fault (see ``refusals.py``), in our own words.
REFUSED_KEY = web.RequestKey("dockyard.refused", str)
#: An incoming id is kept only if it cannot forge a log line or bloat one.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}\Z")

access_log = logging.getLogger("dockyard.access")

#: Longest an info line waits in the buffer (a flush per line cost ~15 us per request).
FLUSH_EVERY = 0.1


#: Set in each worker process to its slot (0 .. N-1) by ``app/supervisor.py``.
WORKER_ENV = "DOCKYARD_WORKER"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, plus the record's fields.

    Structured fields travel in ``extra={"fields": {...}}``; they are merged into the top
    level of the object so a filter reads ``.status``, not ``.fields.status``.
    """

    def __init__(self) -> None:
        super().__init__()
        #: With worker processes, each line names the worker that wrote it.
        slot = os.environ.get(WORKER_ENV)
        self.worker = int(slot) if slot and slot.isdigit() else None

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        error = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            error,
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> str:
        """The JSON object of one line (without its newline)."""
        doc: dict[str, Any] = {
            "time": _rfc3339(created),
            "level": level,
            "logger": logger,
            "message": message,
        }
        if self.worker is not None:
            doc["worker"] = self.worker
        if fields is not None:
            doc.update(fields)
        if error is not None:
            doc["error"] = error
        return _ENCODER.encode(doc)


#: One encoder for every line: ``json.dumps`` with ``default`` builds a new one per call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


@functools.lru_cache(maxsize=4)
def _whole_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _rfc3339(created: float) -> str:
    """UTC with milliseconds; the seconds part is formatted once per second."""
    return f"{_whole_second(int(created))}.{int(created % 1 * 1000):03d}Z"


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """Writes lines into a buffer, flushed for every warning or error at once, else at
    most ``FLUSH_EVERY`` seconds after the line (the server also flushes on a timer).

    A write syscall per access line was a fifth of the CPU of a manifest GET. Each flush
    writes whole lines only, straight to the file descriptor: worker processes share
    their stderr or log file, and a line split over two writes could be cut by another
    worker's. To a pipe (a container's log collector) a write is kept to ``PIPE_BUF``
    bytes, the size the kernel writes in one piece; to a file, one write per flush.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flushed = time.monotonic()
        self._lines: list[bytes] = []
        self._size = 0
        self._fd = stream.fileno()
        mode = os.fstat(self._fd).st_mode
        piped = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)
        self._chunk = select.PIPE_BUF if piped else _BUFFER

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add_line(self.format(record), record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def add_line(self, text: str, level: int) -> None:
        """Buffer one formatted line; flush as ``emit`` says. Only the logging thread calls
        this, as it does ``emit`` (the server's loop: workers log from the loop)."""
        line = (text + self.terminator).encode("utf-8", "replace")
        self._lines.append(line)
        self._size += len(line)
        if (
            level >= logging.WARNING
            or self._size >= _BUFFER
            or time.monotonic() - self._flushed >= FLUSH_EVERY
        ):
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            lines, self._lines, self._size = self._lines, [], 0
            chunk: list[bytes] = []
            size = 0
            for line in lines:
                if chunk and size + len(line) > self._chunk:
                    self._write(b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            if chunk:
                self._write(b"".join(chunk))
            self._flushed = time.monotonic()
        finally:
            self.release()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except OSError:
                return  # a closed or full log output must not stop serving


#: Bytes of lines buffered before a flush.
_BUFFER = 1 << 16


def flush_logs() -> None:
    """Push buffered lines out (the server calls this every ``FLUSH_EVERY`` seconds)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def level_number(name: str) -> int:
    return LEVELS.get(name.lower(), logging.INFO)


def setup_logging(config: Config) -> None:
    """Send every logger of the process, aiohttp's included, as JSON to ``log.output``."""
    output = config.log.output
    buffer = 1 << 16
    stream = (
        open(output, "a", buffering=buffer, encoding="utf-8")  # noqa: SIM115 - the handler owns it
        if output
        else open(sys.stderr.fileno(), "w", buffering=buffer, encoding="utf-8", closefd=False)  # noqa: SIM115
    )
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    # The JSON lines use none of these: do not compute them for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    old = list(logging.getLogger().handlers)
    for previous in old:
        previous.flush()
    logging.basicConfig(level=level_number(config.log.level), handlers=[handler], force=True)
    for previous in old:  # a reload that moved log.output: let go of the old file
        if isinstance(previous, BatchedStreamHandler):
            previous.stream.close()


def set_level(name: str) -> None:
    """Change the level of the running process (config reload)."""
    logging.getLogger().setLevel(level_number(name))


#: Generated ids: a random prefix per process and a counter, unique without a syscall
#: per request (urandom per request was a visible cost on the manifest GET hot path).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    """A forked worker draws its own prefix: inherited, two workers would hand out the
    same ids."""
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_id_prefix)


def request_id(request: web.BaseRequest) -> str:
    """The request's id, given on first use: the client's when sane, else a new one."""
    rid = request.get(REQUEST_ID_KEY)
    if isinstance(rid, str):
        return rid
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    rid = incoming if _SANE_ID.match(incoming) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    request[REQUEST_ID_KEY] = rid
    return rid


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, errors and 404s included, carries the id."""
    response.headers[REQUEST_ID_HEADER] = request_id(request)


def _app_of(request: web.BaseRequest) -> web.Application | None:
    """The request's application, or None for a request that was never routed.

    aiohttp asserts (AssertionError) that an unrouted request has no ``app``; older
    versions and ``python -O`` fail with AttributeError instead.
    """
    try:
        return request.app  # type: ignore[attr-defined,no-any-return]
    except (AttributeError, AssertionError, RuntimeError):
        return None


#: ``time.time`` under a name the access logger's ``time`` argument does not hide.
_wall_clock = time.time


def _direct_handler() -> BatchedStreamHandler | None:
    """The handler an access line may be written to without a ``LogRecord``, or None.

    Building a record and passing it through the logger and handler was half of an access
    line's cost, a few per cent of a manifest GET. The shortcut is taken only while the
    logging set-up is exactly the one ``setup_logging`` installs (one JSON handler on the
    root, nothing on the access logger, no filters), so anything else (a test's capture
    handler, a filter added later) sees every line through the normal path.
    """
    handlers = logging.root.handlers
    if len(handlers) != 1 or access_log.handlers or access_log.filters or not access_log.propagate:
        return None
    handler = handlers[0]
    if (
        type(handler) is not BatchedStreamHandler
        or handler.filters
        or handler.level > logging.INFO
        or type(handler.formatter) is not JsonFormatter
    ):
        return None
    return handler


class AccessLogger(AbstractAccessLogger):
    """aiohttp's after-the-response hook: the JSON access line, then the observers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        app = _app_of(request)
        for observer in app.get(AFTER_RESPONSE, ()) if app is not None else ():
            try:
                observer(request, response, time)
            except Exception:  # a broken observer must not break the connection
                logging.getLogger("dockyard").exception("after-response observer failed")
        if not access_log.isEnabledFor(logging.INFO):
            return
        user = getattr(request.get(IDENTITY), "user", None)  # when the auth middleware ran
        # Unrouted: the parser refused the request, perhaps in its request line, so the
        # method and path aiohttp shows are placeholders, not what the client sent.
        method, path = (request.method, request.path) if app is not None else (None, None)
        fields = {
            "request_id": request_id(request),
            "method": method,
            "path": path,
            "status": response.status,
            "duration_ms": round(time * 1000, 3),
            "bytes_in": bytes_received(request),
            "bytes_out": bytes_sent(request, response),
            "user": None if user is None else str(user),
            "remote": request.remote,
        }
        message = f"{method} {path}" if app is not None else "refused"
        message = f"{message} {response.status}"
        refused = request.get(REFUSED_KEY)
        if refused is not None:  # the client's fault (see refusals.py): say why, one line
            fields["refused"] = str(refused)
            message = f"{message}: {refused}"
        direct = _direct_handler()
        if direct is not None:
            formatter = cast(JsonFormatter, direct.formatter)
            line = formatter.line(_wall_clock(), "info", access_log.name, message, fields)
            direct.add_line(line, logging.INFO)
            return
        # A record made directly: Logger.info would also walk the stack for the caller's
        # file and line, which an access line does not show.
        record = access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, message, (), None, extra={"fields": fields}
        )
        access_log.handle(record)

    @property
    def enabled(self) -> bool:
        """Always on: metrics observe through this hook even when access lines are off."""
        return True
