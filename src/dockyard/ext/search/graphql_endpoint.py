"""``/v2/_zot/ext/search``: zot's GraphQL endpoint (POST a JSON body, or GET ``?query=``).

Parsing, validation and execution run in a worker thread: a query may scan every
repository of the index, and that must never hold the event loop. A request that is not
GraphQL at all (bad JSON, no query, too big) gets the registry's 400/413 error body; a
query that does not parse or validate gets 422 with GraphQL ``errors`` (as gqlgen, zot's
server, answers); execution errors come back beside ``data`` with 200.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any

from aiohttp import web
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute,
    parse,
    validate,
)

from dockyard.auth.access_policy import DELETE
from dockyard.web.bodies import read_limited
from dockyard.web.request_keys import permits, read_filter
from dockyard.web.spec_errors import error_response

from .index import SearchIndex
from .queries import EVERYONE, Caller, Query

PATH = "/v2/_zot/ext/search"
#: The distribution-spec's extension discovery, where zot's CLI looks for search first.
DISCOVER_PATH = "/v2/_oci/ext/discover"
SEARCH_INDEX: web.AppKey[SearchIndex] = web.AppKey("search_index", SearchIndex)
MAX_BODY = 256 * 1024


@cache
def schema() -> GraphQLSchema:
    """zot's schema, from the SDL file shipped in the package."""
    return build_schema(files(__package__).joinpath("schema.graphql").read_text())


def _bad(message: str, status: int = 400) -> web.Response:
    code = "SIZE_INVALID" if status == 413 else "BAD_REQUEST"
    return error_response(code, message, status)


def _graphql_errors(errors: list[GraphQLError], status: int) -> web.Response:
    body = {
        "errors": [
            {
                "message": e.message,
                "code": "GRAPHQL_VALIDATION_FAILED",
                "detail": {"locations": [loc._asdict() for loc in e.locations or []]},
            }
            for e in errors
        ],
        "data": None,
    }
    return web.json_response(body, status=status)


async def _request_parts(request: web.Request) -> tuple[str, dict[str, Any] | None, str | None]:
    if request.method == "GET":
        query = request.query.get("query")
        raw_vars = request.query.get("variables")
        operation = request.query.get("operationName")
        try:
            variables = json.loads(raw_vars) if raw_vars else None
        except ValueError as exc:
            raise ValueError("variables is not JSON") from exc
    else:
        raw = await read_limited(request, MAX_BODY)
        if raw is None:
            raise OverflowError(f"request body is larger than {MAX_BODY // 1024} KiB")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ValueError("request body is not JSON") from exc
        if not isinstance(doc, dict):
            raise ValueError("request body must be a JSON object")
        query, variables, operation = (
            doc.get("query"),
            doc.get("variables"),
            doc.get("operationName"),
        )
    if not isinstance(query, str) or not query.strip():
        raise ValueError("a GraphQL query is required")
    if variables is not None and not isinstance(variables, dict):
        raise ValueError("variables must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise ValueError("operationName must be a string")
    return query, variables, operation


@lru_cache(maxsize=256)
def _checked(query: str) -> DocumentNode | list[GraphQLError]:
    """The parsed and validated query, or its errors; clients repeat the same few texts
    with new variables, and validation costs as much as running a page of results."""
    try:
        document = parse(query, max_tokens=10_000)
    except GraphQLError as exc:
        return [exc]
    errors = validate(schema(), document)
    return list(errors) if errors else document


def _run(
    query: str, variables: dict[str, Any] | None, operation: str | None, root: Query
) -> tuple[int, dict[str, Any]]:
    document = _checked(query)
    if isinstance(document, list):
        return 422, {"errors": document}
    result = execute(schema(), document, root, variable_values=variables, operation_name=operation)
    assert isinstance(result, ExecutionResult)  # every resolver is synchronous
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    return 200, body


async def search(request: web.Request) -> web.Response:
    try:
        query, variables, operation = await _request_parts(request)
    except OverflowError as exc:
        return _bad(str(exc), 413)
    except ValueError as exc:
        return _bad(str(exc))
    index = request.app[SEARCH_INDEX]
    await index.settled()
    can_read = read_filter(request)
    allowed = permits(request)
    caller = EVERYONE
    if can_read is not None or allowed is not None:
        caller = Caller(
            can_read or EVERYONE.can_read,
            (lambda repo: allowed(DELETE, repo)) if allowed is not None else EVERYONE.can_delete,
        )
    root = Query(index.snapshot(), caller)
    status, body = await asyncio.to_thread(_run, query, variables, operation, root)
    if status != 200:
        return _graphql_errors(body["errors"], status)
    return web.json_response(body)


async def discover(request: web.Request) -> web.Response:
    """The extensions list zot serves, naming the search endpoint (zli checks it)."""
    extension = {
        "name": "_zot",
        "url": "https://github.com/project-zot/zot/blob/main/pkg/extensions/_zot.md",
        "description": "zot registry extensions",
        "endpoints": [PATH],
    }
    return web.json_response({"extensions": [extension]})
