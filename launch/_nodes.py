"""Node types: PyNode, PyClassNode, CourierNode, ReverbNode, MultiThreadingColocation."""

import threading
from typing import Any, Callable, List, Optional, Sequence

from launch import _context, _handles


class Node:
    """A unit of a program: runs in its own thread (threads launch types) or process (local_mp)."""

    def __init__(self):
        self.label: Optional[str] = None
        self.index: int = 0
        self.max_restarts = 0
        # Set by Program.add_node: the node imports TensorFlow when it runs (local_mp forks it from the process that
        # imported TensorFlow once; see launch()).
        self.imports_tensorflow = False
        self.address: Optional[str] = None  # 'host:port' for nodes that serve; set by launch().

    @property
    def name(self) -> str:
        return f"{self.label}/{self.index}" if self.label is not None else type(self).__name__

    def create_handle(self) -> _handles.Handle:
        return _handles.NoClientHandle(self)

    def serving_nodes(self) -> List["Node"]:
        """The nodes (this one, or colocated ones) that need a port before launch."""
        return []

    def run(self) -> None:
        """Runs the node until it is done; called with the program's runtime bound."""
        raise NotImplementedError

    def _port(self) -> int:
        return int(self._address().rsplit(":", 1)[1])

    def _host(self) -> str:
        return self._address().rsplit(":", 1)[0]

    def _address(self) -> str:
        if self.address is None:
            raise RuntimeError(f"Node {self.name} has no address: launch its program with launch().")
        return self.address


class PyNode(Node):
    """Runs `fn(*args, **kwargs)`; handles among the arguments arrive as clients."""

    def __init__(self, fn: Callable[..., Any], *args, **kwargs):
        super().__init__()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def _call(self) -> Any:
        args, kwargs = _handles.dereference_nest((self._args, self._kwargs))
        return self._fn(*args, **kwargs)

    def run(self) -> None:
        self._call()


class PyClassNode(PyNode):
    """Builds `ctor(*args, **kwargs)` and calls its `run()` if it has one."""

    def __init__(self, ctor: Callable[..., Any], *args, **kwargs):
        super().__init__(ctor, *args, **kwargs)
        self._run_enabled = True

    def disable_run(self) -> None:
        """Builds the object but does not call its `run()` (e.g. to drive it from a test)."""
        self._run_enabled = False

    def enable_run(self) -> None:
        self._run_enabled = True

    def _run_method(self, instance: Any) -> Optional[Callable[[], Any]]:
        method = getattr(instance, "run", None)
        return method if self._run_enabled and callable(method) else None

    def run(self) -> None:
        run = self._run_method(self._call())
        if run is not None:
            run()


class CourierNode(PyClassNode):
    """Serves every public method of `ctor(*args, **kwargs)` as an RPC.

    If the object has `run()`, the node runs it and stops serving when it returns; otherwise
    it serves until the program stops. `courier_kwargs` may set `thread_pool_size` (never below
    what batched handlers need); `courier_client_kwargs` (`connect_timeout`, `call_timeout`)
    configure the clients that handles to this node become.
    """

    def __init__(
        self,
        ctor: Callable[..., Any],
        *args,
        courier_kwargs: Optional[dict] = None,
        courier_client_kwargs: Optional[dict] = None,
        **kwargs,
    ):
        super().__init__(ctor, *args, **kwargs)
        self._courier_kwargs = dict(courier_kwargs or {})
        self.client_kwargs = dict(courier_client_kwargs or {})

    def create_handle(self) -> _handles.Handle:
        return _handles.CourierHandle(self)

    def serving_nodes(self) -> List[Node]:
        return [self]

    def run(self) -> None:
        from launch import _courier

        runtime = _context.current()
        instance = self._call()
        methods = _courier.exposed_methods(instance)
        threads = max(self._courier_kwargs.get("thread_pool_size", 0), _courier.server_threads_for(methods))
        server = _courier.CourierServer(
            methods, self._port(), runtime.token, host=self._host(), thread_pool_size=threads
        )
        server.start()
        try:
            run = self._run_method(instance)
            if run is not None:
                run()
            else:
                runtime.stop_event.wait()
        finally:
            server.stop()


# How long a stopping replay node keeps serving the other nodes of its process (threads launch types) while they
# finish; see Runtime.wait_for_clients.
_CLIENTS_GRACE_SECS = 3.0


class ReverbNode(Node):
    """Serves Reverb tables `priority_tables_fn()` with `replay.ReplayServer`.

    Its handle becomes a `reverb.Client`. `checkpoint_ctor()` returns the checkpoint directory
    (restored on start); with `checkpoint_time_delta_minutes` the node checkpoints that often
    until the program stops, and once more when it stops.
    """

    def __init__(
        self,
        priority_tables_fn: Callable[[], Sequence[Any]],
        checkpoint_ctor: Optional[Callable[[], str]] = None,
        checkpoint_time_delta_minutes: Optional[float] = None,
    ):
        super().__init__()
        self._priority_tables_fn = priority_tables_fn
        self._checkpoint_ctor = checkpoint_ctor
        self._checkpoint_time_delta_minutes = checkpoint_time_delta_minutes

    def create_handle(self) -> _handles.Handle:
        return _handles.ReverbHandle(self)

    def serving_nodes(self) -> List[Node]:
        return [self]

    def run(self) -> None:
        import replay  # Imported here so that `import launch` does not import TensorFlow.

        runtime = _context.current()
        checkpoint_dir = self._checkpoint_ctor() if self._checkpoint_ctor else None
        server = replay.ReplayServer(self._priority_tables_fn(), port=self._port(), checkpoint_dir=checkpoint_dir)
        try:
            if self._checkpoint_time_delta_minutes:
                period = 60.0 * self._checkpoint_time_delta_minutes
                while not runtime.stop_event.wait(period):
                    server.checkpoint()
            else:
                runtime.stop_event.wait()
            runtime.wait_for_clients(_CLIENTS_GRACE_SECS)
            if self._checkpoint_time_delta_minutes:
                server.checkpoint()  # What the clients wrote until they stopped, for a program that resumes.
        finally:
            server.stop()


class MultiThreadingColocation(Node):
    """Runs several nodes as threads of one node (one process under local_mp).

    Its handle is the list of the colocated nodes' handles. It ends when all of them end, or
    with `return_on_first_completed` when the first one does; an error in any is its error.
    """

    def __init__(self, nodes: Sequence[Node], return_on_first_completed: bool = False):
        super().__init__()
        for node in nodes:
            if isinstance(node, MultiThreadingColocation):
                raise ValueError("MultiThreadingColocation cannot contain another colocation.")
        self._nodes = list(nodes)
        self._return_on_first_completed = return_on_first_completed

    @property
    def nodes(self) -> List[Node]:
        return self._nodes

    def create_handle(self) -> List[_handles.Handle]:
        return [node.create_handle() for node in self._nodes]

    def serving_nodes(self) -> List[Node]:
        return [served for node in self._nodes for served in node.serving_nodes()]

    def run(self) -> None:
        runtime = _context.current()
        finished = threading.Condition()
        outcomes: List[Optional[BaseException]] = []

        def run_one(node: Node) -> None:
            _context.set_thread_runtime(runtime)
            error = None
            try:
                node.run()
            except BaseException as e:  # Re-raised in the colocation's thread below.
                error = e
            with finished:
                outcomes.append(error)
                finished.notify_all()

        for node in self._nodes:
            threading.Thread(target=run_one, args=(node,), name=node.name, daemon=True).start()
        wanted = 1 if self._return_on_first_completed else len(self._nodes)
        with finished:
            finished.wait_for(lambda: len(outcomes) >= wanted or any(outcomes))
            error = next((e for e in outcomes if e is not None), None)
        if error is not None:
            raise error
