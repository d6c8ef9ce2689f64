"""One authentication interceptor for both gRPC servers (the master's grpc.aio, the worker's sync).

`check(method, token)` returns the caller's claims or raises PermissionError; the claims are then
available to the handler through `current_claims()`. A call without a valid token never reaches a
handler: it ends with UNAUTHENTICATED.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any

import grpc

from runsurge_proto.wire import AUTH_KEY

_claims: contextvars.ContextVar[Any] = contextvars.ContextVar("runsurge_claims", default=None)
Check = Callable[[str, str], Any]


def current_claims() -> Any:
    return _claims.get()


def _token(metadata) -> str:  # noqa: ANN001
    for key, value in metadata or ():
        if key == AUTH_KEY and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):]
    return ""


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _wrap(handler: grpc.RpcMethodHandler, method: str, check: Check) -> grpc.RpcMethodHandler:
    kind = next(k for k in _KINDS if getattr(handler, k))
    behavior = getattr(handler, kind)

    def authorize(context) -> Any:  # noqa: ANN001
        try:
            return check(method, _token(context.invocation_metadata()))
        except PermissionError as e:
            return e

    if inspect.isasyncgenfunction(behavior):
        async def wrapped(request, context):  # noqa: ANN001
            claims = authorize(context)
            if isinstance(claims, PermissionError):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(claims))
            _claims.set(claims)
            async for item in behavior(request, context):
                yield item
    elif inspect.iscoroutinefunction(behavior):
        async def wrapped(request, context):  # noqa: ANN001
            claims = authorize(context)
            if isinstance(claims, PermissionError):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(claims))
            _claims.set(claims)
            return await behavior(request, context)
    else:
        def wrapped(request, context):  # noqa: ANN001
            claims = authorize(context)
            if isinstance(claims, PermissionError):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(claims))
            _claims.set(claims)
            return behavior(request, context)

    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(wrapped, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


class AuthInterceptor(grpc.ServerInterceptor):
    """For grpc.server (sync)."""

    def __init__(self, check: Check):
        self._check = check

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        handler = continuation(handler_call_details)
        return handler and _wrap(handler, handler_call_details.method, self._check)


class AioAuthInterceptor(grpc.aio.ServerInterceptor):
    """For grpc.aio.server."""

    def __init__(self, check: Check):
        self._check = check

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        handler = await continuation(handler_call_details)
        return handler and _wrap(handler, handler_call_details.method, self._check)
