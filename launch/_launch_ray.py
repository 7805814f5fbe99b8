"""ray: each node a Ray actor on a Ray cluster, supervised by the launching process (Ray's driver).

Nodes serve on the IP of the machine Ray places them on and publish that address to the launcher's control
service; handles become clients that look the address up there, so RPC and replay traffic go directly between
nodes, never through Ray's object store. A node's restarts are Ray actor restarts (`max_restarts`).
"""

import dataclasses
import ipaddress
import os
import secrets
import sys
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional

from launch import _control, _controller, _courier, _flags, _nodes, _program

# Methods of a node's actor that run at the same time: wait(), notify_stop(), and Ray's own.
_ACTOR_CONCURRENCY = 4
# How long to wait before asking an actor that Ray said is unavailable (restarting) again.
_RETRY_SECS = 0.5
# Ray's names for the resources an actor requests, as ray.nodes() reports a node's totals.
_RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


@dataclasses.dataclass
class RayOptions:
    """Where and how: `address` of the cluster (else RAY_ADDRESS; with neither, a local Ray instance started and
    stopped with the program); `resources` {group label: Ray actor options, e.g. {"num_cpus": 1, "resources":
    {"gpu_host": 1}}}; `allow_unauthenticated`: join a cluster reached over the network without token auth."""

    address: Optional[str] = None
    resources: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    allow_unauthenticated: bool = False


class _RayWorker(_controller.Worker):
    """A node's Ray actor. Each instance of it (a new one after each restart) publishes itself to the launcher's
    control service, which is how this worker tells a restarted instance from the one before."""

    def __init__(self, node: _nodes.Node, actor_class: Any, args: tuple, control: _control.LauncherControl):
        super().__init__(node)
        self._actor_class = actor_class
        self._args = args
        self._control = control
        self._actor = None
        self._outcome = None  # The pending wait() of the current instance.
        self._instance: Optional[tuple] = None  # The instance that wait() runs on, once it has published.
        self._replaced: Optional[tuple] = None  # The instance a restart replaces, until a new one publishes.
        self._died = False  # Ray gave the actor up (ActorDiedError).
        self._restarted_by_ray = False  # Its process died, and Ray started it again.
        self._retry_at = 0.0  # When to ask an unavailable actor again.

    def start(self) -> None:
        import ray

        if self._actor is None or self._died:  # First start, or Ray gave the actor up: a new actor.
            self._actor = self._actor_class.remote(*self._args)
            self._replaced = self._control.instance(self.node.name)
        elif self._restarted_by_ray:  # Already running again: wait() goes to the new instance.
            self._instance = self._control.instance(self.node.name)
        else:  # The node raised; its actor still runs. Restarting it is a Ray actor restart (max_restarts).
            self._replaced = self._control.instance(self.node.name)
            ray.kill(self._actor, no_restart=False)
        self._died = self._restarted_by_ray = False
        self._outcome = None

    @property
    def pid(self) -> Optional[int]:
        instance = self._control.instance(self.node.name)
        return None if instance is None else instance[1]

    def poll(self) -> Optional[str]:
        import ray

        current = self._control.instance(self.node.name)
        if self._replaced is not None:  # Restarting: a call now could reach the old instance.
            if current == self._replaced:
                return None
            self._replaced, self._instance = None, current
        if self._instance is None:
            self._instance = current  # None until the first instance has published.
        elif current != self._instance:
            self._restarted_by_ray = True
            return "Its Ray actor's process died; Ray started it again."
        if self._outcome is None:
            if time.monotonic() < self._retry_at:
                return None
            self._outcome = self._actor.wait.remote()
        ready, _ = ray.wait([self._outcome], timeout=0)
        if not ready:
            return None
        try:
            error = ray.get(self._outcome)
        except ray.exceptions.ActorUnavailableError:
            # Restarting, or its process has just died (then Ray restarts it, and its new instance publishes
            # itself, or gives it up: ActorDiedError). Asked again in a moment.
            self._outcome, self._retry_at = None, time.monotonic() + _RETRY_SECS
            return None
        except ray.exceptions.RayActorError as e:
            self._died = True
            return f"Its Ray actor died: {e}"
        if not error:
            ray.kill(self._actor)  # Ended by itself: its resources go back to the cluster.
        return error

    def notify_stop(self) -> None:
        self._actor.notify_stop.remote()  # Fire and forget: an actor that is gone is killed at the notice's end.

    def kill(self) -> bool:
        import ray

        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)
        return True


def launch(
    program: _program.Program, termination_notice_secs: float, log_dir: Optional[str], options: RayOptions
) -> _controller.Controller:
    """Starts one Ray actor per node of `program` and returns its controller."""
    ray = _import_ray()
    _check_resource_labels(program, options.resources)
    job = _control.pickle_program(program, "ray")
    token = secrets.token_hex(16)
    log_dir = log_dir or tempfile.mkdtemp(prefix=f"encore-logs-{program.name}-")
    os.makedirs(log_dir, exist_ok=True)
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address not in (None, "auto", "local"):  # Before connecting: nothing is sent to a refused cluster.
        _check_authenticated(address, options.allow_unauthenticated)
    connected_here = _connect(ray, address, namespace=f"encore-{program.name}-{token[:8]}")
    try:
        _check_authenticated(ray.get_runtime_context().gcs_address, options.allow_unauthenticated)
        _check_placement(ray, program, options.resources)
        actor_classes = _actor_classes(ray, program, options.resources)
        control = _control.LauncherControl(program, log_dir)
        # On the driver's node IP: nodes on other machines call it (token-checked, like every node).
        control_server = _courier.CourierServer(
            _control.methods(control), port=0, token=token, host=ray.util.get_node_ip_address()
        )
    except BaseException:
        if connected_here:
            ray.shutdown()
        raise
    control_server.start()
    argv = [sys.argv[0], *(f for f in _flags.launcher_flags().split("\n") if f)]
    # The job by value, not a ray.put() reference: a restarted actor gets its arguments again from its creation
    # task, which Ray keeps, whatever happened to objects in the store meanwhile.
    # No runtime_env (it would make Ray start a new worker process for every actor): the actor sets up its
    # process itself, with the launcher's import paths where they exist and TensorFlow kept quiet.
    setup = {"paths": _user_paths(), "environ": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    workers = [
        _RayWorker(node, actor_class, (job, node.name, token, control_server.address, argv, setup), control)
        for node, actor_class in zip(program.get_all_nodes(), actor_classes)
    ]

    def on_end() -> None:
        for worker in workers:  # Whatever the outcome, no actor of the program outlives it.
            worker.kill()
        control_server.stop(grace=0)
        if connected_here:
            ray.shutdown()  # Ends a Ray instance started here; on a cluster, the driver's job and its actors.

    description = (
        f"{len(workers)} Ray actors on the cluster at {ray.get_runtime_context().gcs_address}, logs in {log_dir}"
    )
    return _control.supervise(
        program, workers, control, token, termination_notice_secs, on_end, description, control.lookup
    )


def _actor_classes(ray, program: _program.Program, resources: Mapping[str, Mapping[str, Any]]) -> List[Any]:
    """The Ray actor class of each node: NodeActor with the node's restarts and its group's resources."""
    from launch import _ray_node

    classes = []
    for node in program.get_all_nodes():
        try:
            classes.append(
                ray.remote(
                    name=node.name,
                    max_restarts=node.max_restarts,
                    max_task_retries=0,
                    max_concurrency=_ACTOR_CONCURRENCY,
                    **resources.get(node.label, {}),
                )(_ray_node.NodeActor)
            )
        except (TypeError, ValueError) as error:  # What Ray raises for an option it does not know or accept.
            raise _controller.LaunchError(
                f"ray_resources[{node.label!r}] = {dict(resources[node.label])} is not valid for Ray: {error}"
            ) from None
    return classes


def _import_ray():
    try:
        import ray
    except ImportError:
        raise _controller.LaunchError("launch_type='ray' needs Ray: pip install 'encore-rl[ray]'.") from None
    return ray


def _connect(ray, address: Optional[str], namespace: str) -> bool:
    """Connects to the cluster (or starts a local instance); True if this launch connected (and disconnects)."""
    if ray.is_initialized():
        return False  # The launching code connected itself, and will disconnect.
    if address is None and "RAY_AUTH_MODE" not in os.environ:
        # A local instance listens on every interface: protect it with a token of its own. (Left unset, Ray
        # writes one to ~/.ray/auth_token, which silently turns token auth on for later clusters.)
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        from ray._raylet import Config

        Config.initialize("")  # Ray read its settings from the environment at import: read them again.
    kwargs: Dict[str, Any] = {"include_dashboard": False} if address is None else {"address": address}
    # Node output reaches the launcher through its control service (see _ray_node), not through Ray's driver logs.
    ray.init(namespace=namespace, log_to_driver=False, logging_level="WARNING", **kwargs)
    return True


def _check_authenticated(address: str, allow_unauthenticated: bool) -> None:
    """Refuses a cluster at a non-loopback `address` (host:port) unless Ray's token auth is on or allowed off."""
    host = address.rpartition(":")[0].strip("[]") or address
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # A host name.
        loopback = host == "localhost"
    if loopback or allow_unauthenticated or os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return
    raise _controller.LaunchError(
        f"The Ray cluster at {host} is reached over the network without token authentication: anyone who can "
        "reach it can run code on it. Start every node and this driver with RAY_AUTH_MODE=token and the same "
        "RAY_AUTH_TOKEN (see README, 'Run on a cluster'), or pass --ray_allow_unauthenticated "
        "(ray_allow_unauthenticated=True) on a network you trust."
    )


def _check_resource_labels(program: _program.Program, resources: Mapping[str, Mapping[str, Any]]) -> None:
    unknown = sorted(set(resources) - set(program.groups))
    if unknown:
        raise _controller.LaunchError(
            f"ray_resources names groups {unknown} that program {program.name!r} does not have; "
            f"its groups are {sorted(program.groups)}."
        )
    for label, request in resources.items():
        if not isinstance(request, Mapping):
            raise _controller.LaunchError(
                f"ray_resources[{label!r}] must be a dict of Ray actor options such as "
                f'{{"num_cpus": 1, "resources": {{"gpu_host": 1}}}}, got {request!r}.'
            )


def _check_placement(ray, program: _program.Program, resources: Mapping[str, Mapping[str, Any]]) -> None:
    """A group's request that no node of the cluster can ever satisfy fails now, naming the group (Ray alone
    leaves the actor pending forever, silently)."""
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    for label in program.groups:
        request = resources.get(label, {})
        needed = {_RESOURCE_NAMES[k]: v for k, v in request.items() if k in _RESOURCE_NAMES and v}
        needed.update(request.get("resources") or {})
        if not needed:
            needed = {"CPU": 1}  # Ray places an actor without a request on a node with a CPU.
        if not any(all(totals.get(name, 0) >= amount for name, amount in needed.items()) for totals in nodes):
            have = [{k: v for k, v in totals.items() if not k.startswith("node:")} for totals in nodes]
            raise _controller.LaunchError(
                f"Group {label!r} requests {needed} (ray_resources[{label!r}] = {dict(request)}), which no node of "
                f"the Ray cluster has: its nodes have {have}. Lower the request, or start a node that has it "
                "(ray start --resources='{\"NAME\": N}' --num-cpus=N ...)."
            )


def _user_paths():
    """The launcher's import paths outside the Python installation (e.g. the launching script's folder)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return [p for p in sys.path if p and os.path.isdir(p) and not os.path.abspath(p).startswith(prefixes)]
