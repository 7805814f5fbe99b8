"""Any builder as a distributed launch.Program: replay, counter, variable server, learner, actors, evaluator."""

import functools
import os
from typing import Any, Dict, List, Optional, Union

import launch as lp
import replay
from agents import core, utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.nodes import ActorNode, CounterNode, EvaluatorNode, LearnerNode, make_parameter_server

# Calls to a node that has stopped fail after this long instead of waiting for it forever.
_CALL_TIMEOUT = {"call_timeout": 3.0}
# A synchronous push waits for its round (up to the parameter server's barrier_timeout, 10 s by default).
_PUSH_CALL_TIMEOUT = {"call_timeout": 40.0}
# How soon program.json shows the pid of a restarted node.
_PIDS_POLL_SECONDS = 0.2


def _replay_tables(experiment: ExperimentConfig) -> List[Any]:
    spec = replay.make_environment_spec(experiment.make_environment(experiment.seed))
    return experiment.builder.make_replay_tables(spec)


def _replay_checkpoint_dir(experiment: ExperimentConfig, shard: int) -> str:
    replay_dir = os.path.join(experiment.run_dir, "replay")
    return replay_dir if experiment.num_replay_shards == 1 else os.path.join(replay_dir, f"shard_{shard}")


def make_distributed_program(experiment: ExperimentConfig, num_actors: int) -> lp.Program:
    """An lp.Program with nodes replay (x experiment.num_replay_shards), counter, variable_server, learner,
    actor (xN), evaluator; for a builder with several learners, parameter_server and learner (x num_learners)
    instead of variable_server and learner.

    Replay restores its latest checkpoint in run_dir/replay, the learner its latest in run_dir/checkpoints and
    the counter run_dir/checkpoints/counter.json, so a program made for a run directory that holds them continues
    that run, and a node restarted after a crash (each node gets `experiment.max_restarts`) continues from them.
    """
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1 (got {num_actors}).")
    check_learners(
        experiment.builder, single_process=False, resuming=os.path.exists(counter_checkpoint_path(experiment.run_dir))
    )
    experiment.check_replay_shards(num_actors, single_process=False)
    program = lp.Program(experiment.builder.name)
    add = functools.partial(program.add_node, max_restarts=experiment.max_restarts)
    replay_handles = [
        add(
            lp.ReverbNode(
                functools.partial(_replay_tables, experiment),
                checkpoint_ctor=functools.partial(_replay_checkpoint_dir, experiment, shard),
                checkpoint_time_delta_minutes=experiment.checkpoint_seconds / 60,
            ),
            label="replay",
        )
        for shard in range(experiment.num_replay_shards)
    ]
    counter = add(make_counter_node(experiment), label="counter")
    if experiment.builder.num_learners() == 1:
        variable_server = add(
            lp.CourierNode(utils.VariableServer, courier_client_kwargs=_CALL_TIMEOUT), label="variable_server"
        )
        learner = add(
            lp.CourierNode(
                LearnerNode, experiment, replay_handles, variable_server, counter, courier_client_kwargs=_CALL_TIMEOUT
            ),
            label="learner",
        )
    else:  # The parameter server is what actors and the evaluator read; the first learner answers status().
        variable_server, learner = _add_gradient_learners(program, experiment, replay_handles, counter)
    for actor_id in range(num_actors):
        add(
            lp.CourierNode(
                ActorNode,
                experiment,
                actor_id,
                num_actors,
                replay_handles[actor_id % len(replay_handles)],
                variable_server,
                counter,
            ),
            label="actor",
        )
    add(lp.CourierNode(EvaluatorNode, experiment, variable_server, counter, learner), label="evaluator")
    return program


def _add_gradient_learners(
    program: lp.Program, experiment: ExperimentConfig, replay_handles: List[Any], counter: Any
) -> tuple:
    """A parameter_server node and the builder's num_learners() learner nodes pushing to it; returns the handles of
    the server and of the first learner. The server holds the only copy of the parameters and optimizer state and is
    not restarted; a restarted learner starts from its newest parameters."""
    num_learners = experiment.builder.num_learners()
    server = program.add_node(
        lp.CourierNode(
            make_parameter_server,
            experiment,
            courier_kwargs={"thread_pool_size": 16 + num_learners},  # Every learner may wait at a barrier at once.
            courier_client_kwargs=_PUSH_CALL_TIMEOUT,
        ),
        label="parameter_server",
        max_restarts=0,
        imports_tensorflow=True,  # Its optimizer (the learners use replay: launch sees that).
    )
    learners = [
        program.add_node(
            lp.CourierNode(
                LearnerNode,
                experiment,
                replay_handles,
                server,
                counter,
                learner_id,
                courier_client_kwargs=_CALL_TIMEOUT,
            ),
            label="learner",
            max_restarts=experiment.max_restarts,
        )
        for learner_id in range(num_learners)
    ]
    return server, learners[0]


def check_learners(builder: Union[core.Builder, core.ProgramBuilder], *, single_process: bool, resuming: bool) -> None:
    """Raises ValueError, naming the fix, when a builder with several learners is asked to run in one process or to
    continue an earlier run."""
    if isinstance(builder, core.ProgramBuilder) or builder.num_learners() == 1:
        return
    what = f"num_learners={builder.num_learners()}"
    if single_process:
        raise ValueError(
            f"{what}: several learners push gradients to a parameter server between the nodes of a distributed run; "
            "drop --single_process, or set num_learners=1."
        )
    if resuming:
        raise ValueError(
            f"{what}: the run directory holds an earlier run, but a run with several learners keeps no checkpoint of "
            "its parameter server (the parameters and optimizer state they share), so it cannot be continued; "
            "start a new run (a new run directory)."
        )


def make_counter_node(experiment: ExperimentConfig) -> lp.CourierNode:
    """The program's counter (a CounterNode), checkpointed to the run directory; make its directory first."""
    return lp.CourierNode(
        CounterNode,
        counter_checkpoint_path(experiment.run_dir),
        experiment.checkpoint_seconds,
        courier_client_kwargs=_CALL_TIMEOUT,
    )


def counter_checkpoint_path(run_dir: str) -> str:
    """Where the counter node of a run keeps its counts."""
    return os.path.join(run_dir, "checkpoints", "counter.json")


def run_distributed(
    experiment: ExperimentConfig,
    num_actors: int = 2,
    launch_type: str = "local_mp",
    launch_options: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Launches the builder's program, waits for it to stop itself, and returns result.json's contents.
    `launch_options`: more arguments of lp.launch(), e.g. ray_address."""
    if launch_type in ("test_mt", "local_mt"):
        # Nodes are threads of this process: import TensorFlow once here rather than from several node
        # threads at the same time, which can deadlock.
        replay.import_tensorflow()
    os.makedirs(os.path.dirname(counter_checkpoint_path(experiment.run_dir)), exist_ok=True)
    return run_program(experiment, make_distributed_program(experiment, num_actors), launch_type, launch_options)


def run_program(
    experiment: ExperimentConfig,
    program: lp.Program,
    launch_type: str = "local_mp",
    launch_options: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Launches `program`, whose nodes write run_dir/result.json and stop it, waits for it to stop, and returns
    result.json's contents.

    run_dir/program.json lists every node with the pid of its process, rewritten when a node is restarted, and
    the replay address when the program has a "replay" node.
    """
    log_dir = os.path.join(experiment.run_dir, "node_logs")
    controller = lp.launch(
        program, launch_type=launch_type, log_dir=log_dir, termination_notice_secs=5, **(launch_options or {})
    )
    nodes = {node.name: node for node in program.get_all_nodes()}
    replay_addresses = [node.address for node in program.groups.get("replay", [])]
    written_pids = None
    try:
        while True:
            pids = controller.node_pids()
            if pids != written_pids:
                utils.write_program_json(
                    experiment.run_dir,
                    program.name,
                    launch_type,
                    replay_addresses[0] if replay_addresses else None,
                    [(node.label, node.index, node.address, pids[name]) for name, node in nodes.items()],
                    node_logs=log_dir,
                    **({"replay_shards": replay_addresses} if len(replay_addresses) > 1 else {}),
                )
                written_pids = pids
            if controller.wait(timeout=_PIDS_POLL_SECONDS):
                break
    except lp.NodeError as error:
        _record_failure(experiment.run_dir, error)
        raise
    result_path = os.path.join(experiment.run_dir, "result.json")
    if not os.path.exists(result_path):
        raise RuntimeError(f"The program ended without writing {result_path}; see the node logs in {log_dir}.")
    return utils.read_json(result_path)


def _record_failure(run_dir: str, error: lp.NodeError) -> None:
    """A node failed for good (restarts spent): result.json, if the evaluator wrote one at the stop that followed,
    says so instead of "user"."""
    result_path = os.path.join(run_dir, "result.json")
    if os.path.exists(result_path):
        utils.write_json(result_path, {**utils.read_json(result_path), "stopped_by": f"failure of {error.node_name}"})
