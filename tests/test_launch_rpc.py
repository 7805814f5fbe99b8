"""Courier RPC and batched_handler on real gRPC servers on 127.0.0.1."""

import concurrent.futures
import pathlib
import subprocess
import sys
import threading

import cloudpickle
import grpc
import numpy as np
import pytest

import launch as lp
from launch import _courier

TOKEN = "test-token"


class Service:
    def __init__(self):
        self.batch_sizes = []
        # The timeout only flushes partial batches: long enough for calls made together to gather.
        self.double = lp.batched_handler(batch_size=4, timeout=1.0)(self.double)

    def echo(self, value):
        return value

    def fail(self, message):
        raise ValueError(message)

    def double(self, values):
        self.batch_sizes.append(len(values))
        return values * 2

    def _private(self):
        return "hidden"

    def __call__(self, x):
        return x + 1


@pytest.fixture
def service():
    instance = Service()
    server = _courier.CourierServer(_courier.exposed_methods(instance), port=0, token=TOKEN)
    server.start()
    client = lp.CourierClient(server.address, label="service/0", token=TOKEN, connect_timeout=10)
    yield instance, server, client
    client.close()
    server.stop()


def test_sync_futures_and_call(service):
    _, _, client = service
    assert client.echo({"a": [1, 2]}) == {"a": [1, 2]}
    assert client(41) == 42
    future = client.futures.echo("x")
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(10) == "x"
    payload = np.random.default_rng(0).standard_normal(2**17)  # 1 MiB of float64.
    np.testing.assert_array_equal(client.echo(payload), payload)


def test_remote_exception_keeps_type_and_carries_remote_traceback(service):
    _, _, client = service
    with pytest.raises(ValueError) as caught:
        client.fail("bad input 7")
    message = str(caught.value)
    assert "bad input 7" in message
    assert "node 'service/0'" in message and "method 'fail'" in message
    assert "Traceback" in message and "in fail" in message
    with pytest.raises(ValueError, match="bad input 8"):
        client.futures.fail("bad input 8").result(10)


def test_private_and_unknown_methods_are_not_callable(service):
    _, _, client = service
    with pytest.raises(AttributeError, match="no remotely callable method '_private'"):
        client._call_sync("_private")
    with pytest.raises(AttributeError, match="nope"):
        client.nope()


def _raw_call(address, payload, metadata):
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/encore.Courier/Call")
        return call(payload, metadata=metadata, timeout=10)


def test_call_without_the_token_is_refused_before_unpickling(service, tmp_path):
    _, server, _ = service
    marker = tmp_path / "unpickled"
    # Unpickling this request creates `marker`: proof that the server touched its bytes.
    payload = pickle_that_touches(marker)
    for metadata in [(), (("encore-token", "wrong"),)]:
        with pytest.raises(grpc.RpcError) as caught:
            _raw_call(server.address, payload, metadata)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert not marker.exists()
    # The same bytes with the right token are unpickled: the check above is meaningful.
    _raw_call(server.address, payload, (("encore-token", TOKEN),))
    assert marker.exists()


class _TouchOnUnpickle:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def pickle_that_touches(path):
    return cloudpickle.dumps(("echo", (_TouchOnUnpickle(str(path)),), {}))


def test_client_with_wrong_token_gets_permission_error(service):
    _, server, _ = service
    client = lp.CourierClient(server.address, token="wrong", connect_timeout=10)
    with pytest.raises(PermissionError, match="token"):
        client.echo(1)
    client.close()


def test_waits_for_a_late_server_then_names_a_missing_one():
    instance = Service()
    port = _free_port()
    client = lp.CourierClient(f"127.0.0.1:{port}", label="late/0", token=TOKEN, connect_timeout=20)
    early = client.futures.echo(2)  # Made before any server is up: it waits for one.
    assert not early.done()
    server = _courier.CourierServer(_courier.exposed_methods(instance), port=port, token=TOKEN)
    server.start()
    assert early.result(20) == 2
    assert client.echo(3) == 3
    server.stop()
    client.close()

    missing = lp.CourierClient(f"127.0.0.1:{_free_port()}", label="missing/0", token=TOKEN, connect_timeout=0.5)
    with pytest.raises(ConnectionError, match="Gave up after 0.5s waiting for node 'missing/0'"):
        missing.echo(1)
    with pytest.raises(ConnectionError, match="node 'missing/0'"):
        missing.futures.echo(1).result(20)
    missing.close()


def test_close_fails_calls_still_waiting_for_the_server():
    client = lp.CourierClient(f"127.0.0.1:{_free_port()}", label="never/0", token=TOKEN, connect_timeout=60)
    waiting = client.futures.echo(1)
    client.close()
    with pytest.raises(ConnectionError, match=r"client of node 'never/0' at \S+ was closed"):
        waiting.result(20)


def test_a_call_to_a_stopped_node_fails_within_its_deadline_naming_the_node():
    assert lp.CourierClient.__init__.__kwdefaults__["call_timeout"] == _courier.DEFAULT_CALL_TIMEOUT_SECS
    instance = Service()
    server = _courier.CourierServer(_courier.exposed_methods(instance), port=0, token=TOKEN)
    server.start()
    client = lp.CourierClient(server.address, label="gone/0", token=TOKEN, connect_timeout=10, call_timeout=1.0)
    try:
        assert client.echo(1) == 1
        server.stop()
        with pytest.raises((TimeoutError, ConnectionError), match="node 'gone/0'"):
            client.echo(2)
        with pytest.raises((TimeoutError, ConnectionError), match="node 'gone/0'"):
            client.futures.echo(3).result(20)
    finally:
        client.close()


class _Blocking:
    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def block(self):
        self.entered.set()
        self.release.wait(60)
        return "released"


def _call_in_flight(label):
    instance = _Blocking()
    server = _courier.CourierServer(_courier.exposed_methods(instance), port=0, token=TOKEN)
    server.start()
    client = lp.CourierClient(server.address, label=label, token=TOKEN, connect_timeout=10)
    in_flight = client.futures.block()
    assert instance.entered.wait(20)
    return instance, server, client, in_flight


def test_calls_in_flight_when_the_program_stops_are_connection_errors():
    # What a counter or publisher sees when the program stops mid-call: the error of a node that is down, which
    # callers already handle, whichever side stops first.
    instance, server, client, in_flight = _call_in_flight("server_stops/0")
    server.stop(grace=0)
    with pytest.raises(ConnectionError, match="node 'server_stops/0'"):
        in_flight.result(20)
    instance.release.set()
    client.close()

    instance, server, client, in_flight = _call_in_flight("client_closes/0")
    client.close()
    with pytest.raises(ConnectionError, match="node 'client_closes/0'.*cancelled: the program is stopping"):
        in_flight.result(20)
    instance.release.set()
    server.stop()


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_batched_handler_batches_concurrent_calls_over_rpc(service):
    instance, _, client = service
    futures = [client.futures.double(np.array([i, i + 1])) for i in range(4)]
    results = [f.result(10) for f in futures]
    assert instance.batch_sizes == [4]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, [2 * i, 2 * i + 2])
    # Fewer calls than batch_size run together once the timeout passes.
    futures = [client.futures.double(np.array([i])) for i in range(3)]
    assert sorted(int(f.result(10)[0]) for f in futures) == [0, 2, 4]
    assert instance.batch_sizes[1:] == [3]


def test_batched_handler_semantics_direct():
    seen = []

    def summarize(values, scale, tag):
        seen.append((values.shape, list(scale), list(tag)))
        return {"total": values.sum(axis=1) * np.asarray(scale), "tag": tag}

    handler = lp.batched_handler(batch_size=3, timeout=5.0, pad_batch=True)(summarize)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda i: handler([i, i], scale=2, tag=f"t{i}"), range(3)))
    assert seen[0][0] == (3, 2)
    assert [o["total"] for o in outs] == [0, 4, 8] and [o["tag"] for o in outs] == ["t0", "t1", "t2"]

    padded = lp.batched_handler(batch_size=4, timeout=0.1, pad_batch=True)(summarize)
    assert padded([5, 5], scale=1, tag="only")["total"] == 10
    assert seen[-1][0] == (4, 2)

    with pytest.raises(TypeError, match="wrap the bound method"):

        class Bad:
            @lp.batched_handler(batch_size=2)
            def f(self, x):
                return x


def test_batched_handler_never_starves_for_threads():
    """A batch larger than the requested pool still gathers: the pool is grown to fit it."""

    class Wide:
        def __init__(self):
            self.f = lp.batched_handler(batch_size=24, timeout=30.0)(self.f)

        def f(self, x):
            return x

    node = lp.CourierNode(Wide, courier_kwargs={"thread_pool_size": 2})
    program = lp.Program("wide")
    handle = program.add_node(node, label="wide")
    controller = lp.launch(program, launch_type="test_mt")
    try:
        client = handle.dereference()
        futures = [client.futures.f(np.array(i)) for i in range(24)]
        assert [int(f.result(20)) for f in futures] == list(range(24))
    finally:
        controller.stop()
        controller.wait(30)


def test_import_launch_does_not_import_tensorflow():
    code = (
        "import sys, launch; "
        'bad = [m for m in ("tensorflow", "reverb", "replay") if m in sys.modules]; '
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
