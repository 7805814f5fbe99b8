"""Any builder as a distributed launch.Program: replay, counter, variable server, learner, actors, evaluator."""

import functools
import os
from typing import Any, Dict, List

import launch as lp
import replay
from agents import utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.nodes import ActorNode, EvaluatorNode, LearnerNode

# Calls to a node that has stopped fail after this long instead of waiting for it forever.
_CALL_TIMEOUT = {"call_timeout": 3.0}


def _replay_tables(experiment: ExperimentConfig) -> List[Any]:
    spec = replay.make_environment_spec(experiment.make_environment(experiment.seed))
    return experiment.builder.make_replay_tables(spec)


def _replay_checkpoint_dir(experiment: ExperimentConfig) -> str:
    return os.path.join(experiment.run_dir, "replay")


def make_distributed_program(experiment: ExperimentConfig, num_actors: int) -> lp.Program:
    """An lp.Program with nodes replay, counter, variable_server, learner, actor (xN), evaluator.

    Replay restores its latest checkpoint in run_dir/replay and the learner (with the counter) its latest in
    run_dir/checkpoints, so a program made for a run directory that holds them continues that run.
    """
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1 (got {num_actors}).")
    program = lp.Program(experiment.builder.name)
    replay_handle = program.add_node(
        lp.ReverbNode(
            functools.partial(_replay_tables, experiment),
            checkpoint_ctor=functools.partial(_replay_checkpoint_dir, experiment),
            checkpoint_time_delta_minutes=experiment.checkpoint_seconds / 60,
        ),
        label="replay",
    )
    counter = program.add_node(lp.CourierNode(utils.Counter, courier_client_kwargs=_CALL_TIMEOUT), label="counter")
    variable_server = program.add_node(
        lp.CourierNode(utils.VariableServer, courier_client_kwargs=_CALL_TIMEOUT), label="variable_server"
    )
    learner = program.add_node(
        lp.CourierNode(
            LearnerNode, experiment, replay_handle, variable_server, counter, courier_client_kwargs=_CALL_TIMEOUT
        ),
        label="learner",
    )
    with program.group("actor"):
        for actor_id in range(num_actors):
            program.add_node(
                lp.CourierNode(ActorNode, experiment, actor_id, num_actors, replay_handle, variable_server, counter)
            )
    program.add_node(lp.CourierNode(EvaluatorNode, experiment, variable_server, counter, learner), label="evaluator")
    return program


def run_distributed(experiment: ExperimentConfig, num_actors: int = 2, launch_type: str = "local_mp") -> Dict[str, Any]:
    """Launches the program, waits for it to stop itself, and returns result.json's contents."""
    if launch_type != "local_mp":
        # Nodes are threads of this process: import TensorFlow once here rather than from several node
        # threads at the same time, which can deadlock.
        replay.import_tensorflow()
    program = make_distributed_program(experiment, num_actors)
    log_dir = os.path.join(experiment.run_dir, "node_logs")
    controller = lp.launch(program, launch_type=launch_type, log_dir=log_dir, termination_notice_secs=5)
    utils.write_program_json(
        experiment.run_dir,
        program.name,
        launch_type,
        program.groups["replay"][0].address,
        [(node.label, node.index, node.address) for node in program.get_all_nodes()],
        node_logs=log_dir,
    )
    controller.wait()
    result_path = os.path.join(experiment.run_dir, "result.json")
    if not os.path.exists(result_path):
        raise RuntimeError(f"The program ended without writing {result_path}; see the node logs in {log_dir}.")
    return utils.read_json(result_path)
