"""Courier-style RPC over gRPC: one generic service, cloudpickled payloads, token-checked calls."""

import concurrent.futures
import functools
import hmac
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import cloudpickle
import grpc

from launch import _context

_METHOD = "/encore.Courier/Call"
TOKEN_METADATA_KEY = "encore-token"
_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
)
# A port must belong to one server only, so a stale or foreign server can never share it.
_SERVER_OPTIONS = CHANNEL_OPTIONS + (("grpc.so_reuseport", 0),)
# gRPC backs off exponentially (1 s, 1.6 s, 2.6 s, ... up to 120 s) between attempts to reach a server
# that is not up yet, so a client started a little before its server could wait ~10 s after the server
# came up. Servers are on loopback or a local network: retrying every <= 0.5 s costs nothing.
_CLIENT_OPTIONS = CHANNEL_OPTIONS + (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)
DEFAULT_CONNECT_TIMEOUT_SECS = 120.0
# A call to a node that died or stopped fails, naming the node, after this long; call_timeout=None waits for ever
# (for methods that legitimately block longer).
DEFAULT_CALL_TIMEOUT_SECS = 60.0
# How often a client waiting for a node with an address source asks where the node serves now.
_ADDRESS_RECHECK_SECS = 1.0
_MIN_SERVER_THREADS = 16


class RemoteError(Exception):
    """An exception raised by a remote method that could not be rebuilt with its own type."""


def exposed_methods(instance: Any) -> Dict[str, Callable[..., Any]]:
    """The methods of `instance` that are callable remotely: public ones and `__call__`."""
    methods = {}
    for name in dir(instance):
        if name.startswith("_") and name != "__call__":
            continue
        if name == "set_courier_server":
            continue
        attribute = getattr(instance, name, None)
        if callable(attribute):
            methods[name] = attribute
    return methods


def server_threads_for(methods: Mapping[str, Callable[..., Any]]) -> int:
    """A serving pool size at which batched handlers can always fill a batch (no deadlock)."""
    needed = 0
    for method in methods.values():
        batch_size = getattr(method, "_batch_size", 0)
        parallelism = getattr(method, "_max_parallelism", 1)
        needed += (parallelism + 1) * batch_size
    return max(_MIN_SERVER_THREADS, needed + 8)


class CourierServer:
    """Serves the given methods on 127.0.0.1:`port`; calls must carry `token`."""

    def __init__(
        self,
        methods: Mapping[str, Callable[..., Any]],
        port: int,
        token: str,
        host: str = "127.0.0.1",
        thread_pool_size: Optional[int] = None,
    ):
        self._methods = dict(methods)
        self._token = token.encode()
        threads = thread_pool_size or server_threads_for(self._methods)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="courier")
        self._server = grpc.server(self._pool, options=_SERVER_OPTIONS)
        handler = grpc.method_handlers_generic_handler(
            "encore.Courier", {"Call": grpc.unary_unary_rpc_method_handler(self._call)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        address = f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as e:
            bound = 0
            cause = e
        else:
            cause = None
        if not bound:
            raise OSError(
                f"Could not bind the courier server to {address}: the port is taken. "
                "Let launch() pick ports, or free this one."
            ) from cause
        self.address = f"{host}:{bound}"

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: Optional[float] = 0.25) -> None:
        self._server.stop(grace).wait()
        self._pool.shutdown(wait=False)

    def _authorized(self, context: grpc.ServicerContext) -> bool:
        for key, value in context.invocation_metadata():
            if key == TOKEN_METADATA_KEY:
                given = value if isinstance(value, bytes) else value.encode()
                return hmac.compare_digest(given, self._token)
        return False

    def _call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        # The token is checked before a single byte of the request is unpickled.
        if not self._authorized(context):
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong program token; only nodes of the same program may call",
            )
        method_name, args, kwargs = cloudpickle.loads(request)
        method = self._methods.get(method_name)
        if method is None:
            error = AttributeError(f"no remotely callable method {method_name!r}; available: {sorted(self._methods)}")
            return _encode_error(error, "")
        try:
            result = method(*args, **kwargs)
        except Exception as e:  # Sent back and re-raised at the caller.
            return _encode_error(e, traceback.format_exc())
        try:
            return cloudpickle.dumps((True, result))
        except Exception as e:
            return _encode_error(TypeError(f"the result of {method_name!r} cannot be serialized: {e}"), "")


def _encode_error(error: BaseException, remote_traceback: str) -> bytes:
    summary = f"{type(error).__name__}: {error}"
    try:
        pickled_error = cloudpickle.dumps(error)
    except Exception:
        pickled_error = None
    return cloudpickle.dumps((False, (pickled_error, summary, remote_traceback)))


def _decode_response(response: bytes, where: str) -> Any:
    ok, payload = cloudpickle.loads(response)
    if ok:
        return payload
    pickled_error, summary, remote_traceback = payload
    detail = f"{summary}\n\nRaised remotely in {where}:\n{remote_traceback}".rstrip()
    error: Optional[BaseException] = None
    if pickled_error is not None:
        try:
            error = cloudpickle.loads(pickled_error)
            error.args = (f"{error}\n\nRaised remotely in {where}:\n{remote_traceback}".rstrip(),)
        except Exception:
            error = None
    raise (error if error is not None else RemoteError(detail))


class _Futures:
    """`client.futures.method(...)` returns a concurrent.futures.Future."""

    def __init__(self, client: "CourierClient"):
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., concurrent.futures.Future]:
        if name.startswith("_") and name != "__call__":
            raise AttributeError(name)
        return functools.partial(self._client._call_async, name)

    def __call__(self, *args, **kwargs) -> concurrent.futures.Future:
        return self._client._call_async("__call__", *args, **kwargs)


class CourierClient:
    """Client of a CourierNode: `client.method(...)` calls it, `client.futures.method(...)` too.

    A call made before the server is up waits for it up to `connect_timeout` seconds, then
    fails naming the node. `call_timeout` bounds each call once connected (TimeoutError naming the node);
    pass None explicitly for methods that may block longer than the default.
    """

    def __init__(
        self,
        address: Optional[str],
        *,
        label: Optional[str] = None,
        token: Optional[str] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECS,
        call_timeout: Optional[float] = DEFAULT_CALL_TIMEOUT_SECS,
        address_source: Optional[Callable[[], Optional[str]]] = None,
    ):
        if token is None:
            runtime = _context.current_or_none()
            if runtime is None:
                raise RuntimeError("CourierClient needs the program token: create it inside a node, or pass token=.")
            token = runtime.token
        if address is None and address_source is None:
            raise ValueError("CourierClient needs an address or an address_source.")
        self._label = label
        self._metadata = ((TOKEN_METADATA_KEY, token),)
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        # Asked for the server's current address whenever it is not known to serve: a node restarted elsewhere
        # (ray) is found at its new address.
        self._address_source = address_source
        self._address: Optional[str] = None
        self._channel: Optional[grpc.Channel] = None
        self._stub = None
        self._ready = False  # Known to be serving; reset when a call finds it unavailable.
        self._lock = threading.Lock()
        self._closed = False
        # The channel_ready_futures being waited on: close() cancels them.
        self._connecting: Set[grpc.Future] = set()
        # Futures calls made before the server is known to serve wait in `_pending` for one
        # short-lived thread, which sends them once it serves, then ends: an idle client holds no
        # thread.
        self._pending: List[Tuple[str, bytes, concurrent.futures.Future]] = []
        self._sender: Optional[threading.Thread] = None
        self.futures = _Futures(self)
        if address is not None:
            self._connect(address)

    @property
    def _where(self) -> str:
        address = self._address or "(address not known yet)"
        return f"node {self._label!r} at {address}" if self._label else address

    def _connect(self, address: str) -> None:
        """Points the client at `address` (a new channel if it moved; calls on the old one fail)."""
        with self._lock:
            if address == self._address or self._closed:
                return
            old, self._channel = self._channel, grpc.insecure_channel(address, options=_CLIENT_OPTIONS)
            self._stub = self._channel.unary_unary(_METHOD)
            self._address = address
        if old is not None:
            old.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._call_sync, name)

    def __call__(self, *args, **kwargs) -> Any:
        return self._call_sync("__call__", *args, **kwargs)

    def __reduce__(self):
        raise TypeError(
            f"A CourierClient ({self._where}) cannot be pickled; pass the node handle "
            "returned by program.add_node() instead."
        )

    def close(self) -> None:
        """Closes the channel; calls still waiting for the server fail with ConnectionError."""
        with self._lock:
            self._closed = True
            connecting, self._connecting = self._connecting, set()
            channel = self._channel
        for ready in connecting:  # Taken from the set, so cancelled here only (twice would raise).
            ready.cancel()
        if channel is not None:
            channel.close()

    def _wait_until_ready(self) -> None:
        if self._ready:
            return
        deadline = time.monotonic() + self._connect_timeout
        while True:
            if self._address_source is not None:
                address = self._address_source()
                if address is not None:
                    self._connect(address)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionError(
                    f"Gave up after {self._connect_timeout:g}s waiting for {self._where} to serve: it has "
                    "not started, has crashed, or is busy constructing. Check its log."
                )
            # With an address source, the address is asked for again every so often: the node may have moved.
            timeout = remaining if self._address_source is None else min(remaining, _ADDRESS_RECHECK_SECS)
            if self._channel_ready(timeout):
                self._ready = True
                return

    def _channel_ready(self, timeout: float) -> bool:
        """Waits up to `timeout` for the current channel to connect; False if it did not (or moved meanwhile)."""
        with self._lock:
            if self._closed:
                raise ConnectionError(f"The client of {self._where} was closed.")
            channel = self._channel
            if channel is None:  # No address yet.
                ready = None
            else:
                ready = grpc.channel_ready_future(channel)
                self._connecting.add(ready)
        if ready is None:
            time.sleep(timeout)
            return False
        try:
            ready.result(timeout=timeout)
            return channel is self._channel
        except grpc.FutureTimeoutError:
            return False
        except grpc.FutureCancelledError:
            if self._closed:
                raise ConnectionError(
                    f"The client of {self._where} was closed while waiting for it to serve."
                ) from None
            return False  # Its channel was replaced (the node moved): wait on the new one.
        finally:
            with self._lock:
                waited = ready in self._connecting
                self._connecting.discard(ready)
            if waited:  # Unless close() cancelled it: unsubscribes from the channel's state.
                ready.cancel()

    def _call_sync(self, method: str, *args, **kwargs) -> Any:
        self._wait_until_ready()
        request = cloudpickle.dumps((method, args, kwargs))
        try:
            response = self._stub(request, metadata=self._metadata, wait_for_ready=True, timeout=self._call_timeout)
        except grpc.RpcError as e:
            raise self._rpc_error(method, e) from None
        return _decode_response(response, f"{self._where}, method {method!r}")

    def _call_async(self, method: str, *args, **kwargs) -> concurrent.futures.Future:
        result: concurrent.futures.Future = concurrent.futures.Future()
        request = cloudpickle.dumps((method, args, kwargs))
        if self._ready:
            self._send_async(method, request, result)
            return result

        with self._lock:
            self._pending.append((method, request, result))
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_when_ready, daemon=True, name=f"courier-connect:{self._where}"
                )
                self._sender.start()
        return result

    def _send_when_ready(self) -> None:
        """Sends the pending futures calls once the server serves (or fails them), then ends."""
        while True:
            with self._lock:
                pending, self._pending = self._pending, []
                if not pending:
                    self._sender = None
                    return
            try:
                # Returns at once when ready; calls made after a failure wait anew.
                self._wait_until_ready()
                error = None
            except ConnectionError as e:
                error = e
            for method, request, result in pending:
                if error is not None:
                    result.set_exception(error)
                    continue
                try:
                    self._send_async(method, request, result)
                except Exception as e:  # E.g. the channel was closed meanwhile: the caller gets it.
                    result.set_exception(e)

    def _send_async(self, method: str, request: bytes, result: concurrent.futures.Future) -> None:
        where = f"{self._where}, method {method!r}"

        def done(call: grpc.Future) -> None:
            try:
                result.set_result(_decode_response(call.result(), where))
            except grpc.RpcError as e:
                result.set_exception(self._rpc_error(method, e))
            except BaseException as e:
                result.set_exception(e)

        self._stub.future(
            request, metadata=self._metadata, wait_for_ready=True, timeout=self._call_timeout
        ).add_done_callback(done)

    def _rpc_error(self, method: str, error: grpc.RpcError) -> Exception:
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        message = f"Call of {method!r} on {self._where} failed: {details}"
        if code is grpc.StatusCode.UNAUTHENTICATED:
            return PermissionError(message)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return TimeoutError(f"{message} (call_timeout={self._call_timeout}s)")
        if code is grpc.StatusCode.UNAVAILABLE:
            self._ready = False
            return ConnectionError(message)
        if code is grpc.StatusCode.CANCELLED:
            # The channel closed with this call in flight (the program is stopping): callers treat it as a node that
            # went down, not as an error the method raised.
            self._ready = False
            return ConnectionError(f"{message} (cancelled: the program is stopping)")
        return RemoteError(f"{message} (gRPC status {code})")
