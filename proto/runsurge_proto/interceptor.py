"""One authentication interceptor for both gRPC servers (the master's grpc.aio, the worker's sync).

`check(method, token, peer)` returns the caller's claims or raises PermissionError; the claims are
then available to the handler through `current_claims()`. `peer` is the verified TLS client
certificate (common name and PEM; empty without one). A call that fails the check never reaches a
handler: it ends with UNAUTHENTICATED. Nor does a request that does not parse or holds a number no
handler can store (out_of_range): INVALID_ARGUMENT.
"""

from __future__ import annotations

import contextvars
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from runsurge_proto.wire import AUTH_KEY

_claims: contextvars.ContextVar[Any] = contextvars.ContextVar("runsurge_claims", default=None)


@dataclass(frozen=True)
class Peer:
    common_name: str = ""
    cert_pem: bytes = b""


Check = Callable[[str, str, Peer], Any]


def current_claims() -> Any:
    return _claims.get()


def peer_of(context) -> Peer:
    """The client certificate gRPC verified against the CA during the TLS handshake."""
    auth = context.auth_context() or {}
    cn = auth.get("x509_common_name") or [b""]
    pem = auth.get("x509_pem_cert") or [b""]
    return Peer(common_name=cn[0].decode(errors="replace"), cert_pem=pem[0])


def _token(metadata) -> str:
    for key, value in metadata or ():
        if key == AUTH_KEY and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):]
    return ""


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_MALFORMED = object()  # what a request that does not parse becomes: refused as INVALID_ARGUMENT
_BAD_REQUEST = "malformed request"
# Every integer a handler stores goes into a signed column (BIGINT for uint64, INTEGER for uint32).
_UNSIGNED_MAX = {FieldDescriptor.TYPE_UINT64: (1 << 63) - 1, FieldDescriptor.TYPE_FIXED64: (1 << 63) - 1,
                 FieldDescriptor.TYPE_UINT32: (1 << 31) - 1, FieldDescriptor.TYPE_FIXED32: (1 << 31) - 1}
_FLOAT = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def out_of_range(msg: Message) -> str | None:
    """The first field no handler can use: an unsigned integer beyond its signed column, a NaN or infinite double.
    Checked here, once for every method, so no handler meets one (they became UNKNOWN errors)."""
    for field, value in msg.ListFields():
        values = value if field.is_repeated else (value,)
        for v in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                problem = out_of_range(v)
            elif field.type in _UNSIGNED_MAX and v > _UNSIGNED_MAX[field.type]:
                problem = f"{field.name} is out of range (at most {_UNSIGNED_MAX[field.type]})"
            elif field.type in _FLOAT and not math.isfinite(v):
                problem = f"{field.name} must be a finite number"
            else:
                continue
            if problem:
                return problem
    return None


def _lenient(deserializer):
    def parse(data: bytes) -> Any:
        try:
            msg = deserializer(data) if deserializer else data
        except Exception:  # noqa: BLE001 - any parse failure is the caller's fault, not ours
            return _MALFORMED
        if isinstance(msg, Message) and (problem := out_of_range(msg)):
            return Malformed(problem)
        return msg
    return parse


@dataclass(frozen=True)
class Malformed:
    """A request that parsed but holds a value out of range: refused as INVALID_ARGUMENT with why."""
    reason: str


def _malformed(request: Any) -> str | None:
    if request is _MALFORMED:
        return _BAD_REQUEST
    return request.reason if isinstance(request, Malformed) else None


def _wrap(handler: grpc.RpcMethodHandler, method: str, check: Check) -> grpc.RpcMethodHandler:
    kind = next(k for k in _KINDS if getattr(handler, k))
    behavior = getattr(handler, kind)
    streamed_request = kind.startswith("stream")

    def refusal(request, context) -> tuple[grpc.StatusCode, str] | None:
        try:
            _claims.set(check(method, _token(context.invocation_metadata()), peer_of(context)))
        except PermissionError as e:
            return grpc.StatusCode.UNAUTHENTICATED, str(e)
        if not streamed_request and (reason := _malformed(request)):
            return grpc.StatusCode.INVALID_ARGUMENT, reason
        return None

    async def checked_stream(requests, context):
        async for r in requests:
            if reason := _malformed(r):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
            yield r

    def checked_stream_sync(requests, context):
        for r in requests:
            if reason := _malformed(r):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
            yield r

    if inspect.isasyncgenfunction(behavior):
        async def wrapped(request, context):
            if problem := refusal(request, context):
                await context.abort(*problem)
            if streamed_request:
                request = checked_stream(request, context)
            async for item in behavior(request, context):
                yield item
    elif inspect.iscoroutinefunction(behavior):
        async def wrapped(request, context):
            if problem := refusal(request, context):
                await context.abort(*problem)
            if streamed_request:
                request = checked_stream(request, context)
            return await behavior(request, context)
    else:
        def wrapped(request, context):
            if problem := refusal(request, context):
                context.abort(*problem)
            if streamed_request:
                request = checked_stream_sync(request, context)
            return behavior(request, context)

    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(wrapped, request_deserializer=_lenient(handler.request_deserializer),
                   response_serializer=handler.response_serializer)


class AuthInterceptor(grpc.ServerInterceptor):
    """For grpc.server (sync)."""

    def __init__(self, check: Check):
        self._check = check

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        return handler and _wrap(handler, handler_call_details.method, self._check)


class AioAuthInterceptor(grpc.aio.ServerInterceptor):
    """For grpc.aio.server."""

    def __init__(self, check: Check):
        self._check = check

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        return handler and _wrap(handler, handler_call_details.method, self._check)
