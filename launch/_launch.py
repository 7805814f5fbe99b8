"""launch(): runs programs with one of the launch types."""

from typing import Any, Mapping, Optional, Sequence, Union

import tree

from launch import _controller, _flags, _program
from launch._handles import Handle
from launch._launch_types import LAUNCH_TYPES, LaunchType

# Launchpad's local terminals: all mean "this terminal, plus log files" here.
_TERMINALS = (
    None,
    "current_terminal",
    "output_to_files",
    "tmux_session",
    "byobu_session",
    "gnome-terminal",
    "gnome-terminal-tabs",
    "xterm",
)


def launch(
    programs: Union[_program.Program, Sequence[_program.Program]],
    launch_type: Union[LaunchType, str, None] = None,
    *,
    termination_notice_secs: Optional[float] = None,
    log_dir: Optional[str] = None,
    test_case: Optional[Any] = None,
    terminal: Optional[str] = None,
    ray_address: Optional[str] = None,
    ray_resources: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ray_allow_unauthenticated: bool = False,
    preload: Optional[bool] = None,
) -> _controller.Controller:
    """Starts `programs` and returns a controller (`wait()`, `stop()`).

    `launch_type` defaults to `--lp_launch_type` (local_mt); `termination_notice_secs` to
    `--lp_termination_notice_secs` (10). Several programs are merged into one. local_mt,
    local_mp and ray also wait for the program at interpreter exit and stop it on Ctrl-C/SIGTERM.
    `log_dir` (local_mp, ray): where the launcher writes `<label>_<index>.log` files (default: a new temp dir).
    `test_case`: a unittest.TestCase whose cleanup stops the program and waits for it.
    `terminal`: accepted for Launchpad compatibility; local_mp and ray always print node output here,
    prefixed `[label/index]`, and writes it to log files (no tmux/xterm windows).
    `preload` (local_mp; default: true unless the environment sets ENCORE_PRELOAD=0): nodes are forked from a
    process that imported what they need once, instead of each importing it (seconds per node): nodes that use
    TensorFlow (replay nodes, nodes given a replay handle and nodes added with `imports_tensorflow=True`; every
    node if the program's definition refers to TensorFlow) from one that imported TensorFlow, Reverb, `replay`
    and the modules the program refers to, the others from one that imported only those modules (never
    TensorFlow for them); `preload=False` spawns every node.
    ray: `ray_address` of the cluster (else RAY_ADDRESS; with neither, a local Ray instance lives as long as the
    program); `ray_resources` {group label: Ray actor options such as {"num_cpus": 1, "resources": {"gpu_host":
    1}}}; `ray_allow_unauthenticated` joins a cluster reached over the network without Ray's token auth.
    """
    if terminal not in _TERMINALS:
        raise ValueError(f"Unknown terminal {terminal!r}; use one of {_TERMINALS}.")
    program = _merge(programs)
    _check_handles(program)
    kind = _launch_type(launch_type)
    if preload is not None and kind is not LaunchType.LOCAL_MULTI_PROCESSING:
        raise ValueError(f"preload applies to launch_type='local_mp' only, not {kind.value!r}.")
    if kind is not LaunchType.RAY and (ray_address or ray_resources or ray_allow_unauthenticated):
        raise ValueError(
            f"ray_address, ray_resources and ray_allow_unauthenticated apply to launch_type='ray' only, "
            f"not {kind.value!r}."
        )
    notice = _flags.termination_notice_secs() if termination_notice_secs is None else termination_notice_secs
    if kind is LaunchType.LOCAL_MULTI_PROCESSING:
        from launch import _launch_processes, _preloading

        preload = _preloading.preload_default() if preload is None else preload
        controller = _launch_processes.launch(program, notice, log_dir, preload)
    elif kind is LaunchType.RAY:
        from launch import _launch_ray

        options = _launch_ray.RayOptions(ray_address, dict(ray_resources or {}), ray_allow_unauthenticated)
        controller = _launch_ray.launch(program, notice, log_dir, options)
    else:
        from launch import _launch_threads

        controller = _launch_threads.launch(program, notice, serve_forever=kind is LaunchType.LOCAL_MULTI_THREADING)
    if test_case is not None:
        test_case.addCleanup(controller.stop_and_wait)
    return controller


def _launch_type(launch_type: Union[LaunchType, str, None]) -> LaunchType:
    if launch_type is None:
        launch_type = _flags.launch_type()
    if isinstance(launch_type, LaunchType):
        return launch_type
    try:
        return LaunchType(launch_type)
    except ValueError:
        raise ValueError(f"Unknown launch type {launch_type!r}; use one of {list(LAUNCH_TYPES)}.") from None


def _merge(programs: Union[_program.Program, Sequence[_program.Program]]) -> _program.Program:
    if isinstance(programs, _program.Program):
        return programs
    programs = list(programs)
    if not programs or not all(isinstance(p, _program.Program) for p in programs):
        raise TypeError("launch() takes a Program or a non-empty list of Programs.")
    if len(programs) == 1:
        return programs[0]
    merged = _program.Program("+".join(p.name for p in programs))
    for program in programs:
        for label, nodes in program.groups.items():
            if label in merged.groups:
                raise ValueError(f"Programs launched together share the label {label!r}; rename one.")
            merged.groups[label] = nodes
    return merged


def _check_handles(program: _program.Program) -> None:
    """Every handle a node receives must be of a node of the same program (or it would have no address)."""
    nodes = program.get_all_nodes()
    known = {id(inner) for node in nodes for inner in (node, *getattr(node, "nodes", ()))}
    for node in nodes:
        for value in tree.flatten(vars(node)):
            if isinstance(value, Handle) and id(value._node) not in known:
                raise ValueError(
                    f"Node {node.name} receives a handle of node {value._node.name}, which is not part of program "
                    f"{program.name!r}: add that node to this program, or launch both programs together "
                    "(lp.launch([program_a, program_b]))."
                )
