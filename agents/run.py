"""Trains any registered agent on a gymnasium environment until solved or out of budget.

    python -m agents.run --agent dqn --env CartPole-v1                  # distributed, local_mp, 2 actors
    python -m agents.run --agent dqn --single_process --config learning_rate=1e-3
    python -m agents.run --resume runs/20261126-101500-000000 --max_seconds 120
    python -m agents.run --launch_type ray --ray_address 10.0.0.1:6379     # nodes as actors on a Ray cluster

Writes run_dir/{config,program,result}.json, logs/*.csv, tb/, checkpoints/, replay/ and learning_curve.png.
"""

import time

_START_TIME = time.time()  # Before the heavy imports: a script's wall time counts them.

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import launch  # noqa: E402
import replay  # noqa: E402
from agents import core, envs, experiments, registry, utils  # noqa: E402
from agents.experiments.overrides import parse_overrides  # noqa: E402

# Flags a resumed run takes from its run directory unless given again (budgets replace the old ones).
_RUN_FLAGS = (
    "agent",
    "env",
    "num_actors",
    "launch_type",
    "single_process",
    "seed",
    "max_seconds",
    "max_actor_steps",
    "eval_episodes",
    "eval_every",
    "solve_check_every",
    "stop_when_solved",
    "deterministic",
    "checkpoint_seconds",
    "max_restarts",
    "num_replay_shards",
    "verbose",
)
_DEFAULTS = {
    "agent": "dqn",
    "env": "CartPole-v1",
    "num_actors": 2,
    "launch_type": "local_mp",
    "single_process": False,
    "seed": 0,
    "max_seconds": 300.0,
    "max_actor_steps": None,
    "eval_episodes": 10,
    "eval_every": 5_000,
    "solve_check_every": 500,
    "stop_when_solved": True,
    "deterministic": False,
    "checkpoint_seconds": 60.0,
    "max_restarts": 3,
    "num_replay_shards": 1,
    "verbose": False,
    "ray_address": None,
    "ray_resources": None,
    "ray_allow_unauthenticated": False,
}


class UsageError(Exception):
    """A mistake in the command line or run directory, reported in one line without a traceback."""


def _boolean(text: str) -> bool:
    """A flag's true/false value."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def make_parser(prog: str = "python -m agents.run") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0], argument_default=argparse.SUPPRESS)
    parser.add_argument("--agent", help=f"one of {', '.join(sorted(registry.AGENTS))} (default dqn)")
    parser.add_argument("--env", help="gymnasium environment id (default CartPole-v1)")
    parser.add_argument("--num_actors", type=int, help="actor nodes (default 2)")
    parser.add_argument("--launch_type", choices=launch.LAUNCH_TYPES, help="default local_mp")
    parser.add_argument(
        "--single_process", action="store_true", help="interleave acting and learning in one process (no launch)"
    )
    parser.add_argument("--run_dir", help="output directory, new or empty (default runs/<timestamp>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoints")
    parser.add_argument("--max_seconds", type=float, help="wall-clock budget of this launch (default 300)")
    parser.add_argument("--max_actor_steps", type=int, help="actor-step budget of the whole run")
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--eval_episodes", type=int, help="greedy episodes per evaluation (default 10)")
    parser.add_argument(
        "--eval_every", type=int, help="actor steps between full evaluations, the learning curve (default 5000)"
    )
    parser.add_argument(
        "--solve_check_every", type=int, help="actor steps between solve checks with --stop_when_solved (default 500)"
    )
    parser.add_argument(
        "--stop_when_solved",
        type=_boolean,
        metavar="{true,false}",
        help="end the run once an evaluation reaches the solve threshold (default true); false trains to the budget",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="with --single_process: the same seed gives the same run (seeded generators, deterministic TF ops)",
    )
    parser.add_argument(
        "--checkpoint_seconds", type=float, help="learner, counter and replay checkpoint period (default 60)"
    )
    parser.add_argument(
        "--max_restarts",
        type=int,
        help="times each node is restarted after it fails or is killed, from its last checkpoint (default 3)",
    )
    parser.add_argument(
        "--num_replay_shards",
        type=int,
        help="replay servers with identical tables; actor i writes to shard i mod K (default 1)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the agent's config (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="node logs to the terminal too")
    parser.add_argument(
        "--ray_address", help="--launch_type ray: the cluster (default RAY_ADDRESS, else a local Ray instance)"
    )
    parser.add_argument(
        "--ray_resources",
        metavar="JSON",
        help='--launch_type ray: Ray resources per node group, e.g. \'{"learner": {"resources": {"gpu_host": 1}}}\'',
    )
    parser.add_argument(
        "--ray_allow_unauthenticated",
        action="store_true",
        help="--launch_type ray: join a cluster reached over the network without Ray's token auth",
    )
    return parser


def _launch_options(flags: Dict[str, Any]) -> Dict[str, Any]:
    """lp.launch()'s ray_* arguments from the --ray_* flags. Raises UsageError."""
    given = [key for key in ("ray_address", "ray_resources", "ray_allow_unauthenticated") if flags[key]]
    if flags["launch_type"] != "ray":
        if given:
            raise UsageError(f"{', '.join('--' + key for key in given)} apply to --launch_type ray only.")
        return {}
    try:
        resources = json.loads(flags["ray_resources"] or "{}")
    except json.JSONDecodeError as error:
        raise UsageError(f'--ray_resources is not JSON ({error}); e.g. \'{{"actor": {{"num_cpus": 1}}}}\'.') from None
    if not isinstance(resources, dict):
        raise UsageError("--ray_resources must be a JSON object {group label: Ray resources}.")
    return {
        "ray_address": flags["ray_address"],
        "ray_resources": resources,
        "ray_allow_unauthenticated": flags["ray_allow_unauthenticated"],
    }


def prepare(argv: Optional[List[str]] = None, config: Any = None, start_time: Optional[float] = None) -> tuple:
    """(experiment, run flags) from the command line, after checking everything that can be checked before
    a node starts. Raises UsageError."""
    args = vars(make_parser().parse_args(argv))
    overrides = args.pop("config")
    resume_dir = args.pop("resume", None)
    if resume_dir is not None:
        if "run_dir" in args:
            raise UsageError("--resume RUN_DIR continues that run in place; drop --run_dir.")
        flags, saved_config = _resumed_flags(resume_dir, args)
        run_dir = resume_dir
    else:
        flags = {**_DEFAULTS, **args}
        run_dir = flags.pop("run_dir", None)
        saved_config = {}
    builder_class = _or_usage_error(registry.builder_class, flags["agent"])
    assembles_itself = issubclass(builder_class, core.ProgramBuilder)
    if assembles_itself and resume_dir is not None and not builder_class.resumable:
        raise UsageError(f"--resume: {flags['agent']} runs keep no checkpoints to continue from; start a new run.")
    if assembles_itself and "num_actors" in args and not builder_class.uses_num_actors:
        raise UsageError(
            f"--num_actors: {flags['agent']} takes its node count from its config; see its --config fields."
        )
    if config is None:
        values = {**saved_config, **_or_usage_error(parse_overrides, builder_class.config_class, overrides)}
        config = _or_usage_error(lambda: builder_class.config_class(**values))
    builder = builder_class(config)
    _or_usage_error(
        lambda: experiments.check_learners(
            builder, single_process=flags["single_process"], resuming=resume_dir is not None
        )
    )
    if flags["num_actors"] < 1:
        raise UsageError(f"--num_actors must be >= 1 (got {flags['num_actors']}).")
    if flags["deterministic"]:
        if not flags["single_process"]:
            raise UsageError(
                "--deterministic needs --single_process: the nodes of a distributed run race (whose data the "
                "learner samples first, when parameters reach the actors), so no seed can make two runs the same."
            )
        _or_usage_error(experiments.check_repeatable, builder)
    experiment = _or_usage_error(
        lambda: experiments.ExperimentConfig(
            builder=builder,
            run_dir=run_dir or "",
            env_name=flags["env"],
            seed=flags["seed"],
            max_seconds=flags["max_seconds"],
            max_actor_steps=flags["max_actor_steps"],
            eval_episodes=flags["eval_episodes"],
            eval_every=flags["eval_every"],
            solve_check_every=flags["solve_check_every"],
            stop_when_solved=flags["stop_when_solved"],
            deterministic=flags["deterministic"],
            checkpoint_seconds=flags["checkpoint_seconds"],
            max_restarts=flags["max_restarts"],
            num_replay_shards=flags["num_replay_shards"],
            start_time=time.time() if start_time is None else start_time,
            verbose=flags["verbose"],
        )
    )
    _or_usage_error(experiment.check_replay_shards, flags["num_actors"], flags["single_process"])
    environment = _or_usage_error(envs.make_environment, flags["env"])
    if assembles_itself:
        _or_usage_error(builder.check_experiment, experiment)
    else:
        _or_usage_error(builder.check_environment, replay.make_environment_spec(environment))
    _launch_options(flags)
    experiment.run_dir = run_dir if resume_dir else _new_run_dir(run_dir)
    return experiment, flags


def main(argv: Optional[List[str]] = None, config: Any = None, start_time: Optional[float] = None) -> Dict[str, Any]:
    """Runs one experiment and returns the contents of result.json. `config` replaces the agent config;
    `start_time` is when the wall-clock budget started (default: now)."""
    try:
        experiment, flags = prepare(argv, config, start_time)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    run_dir = experiment.run_dir
    utils.write_json(
        os.path.join(run_dir, "config.json"),
        {**flags, "start_time": experiment.start_time, "config": dataclasses.asdict(experiment.builder.config)},
    )
    print(f"run_dir: {run_dir}")
    try:
        result = experiments.run_experiment(
            experiment,
            num_actors=flags["num_actors"],
            launch_type=flags["launch_type"],
            single_process=flags["single_process"],
            launch_options=_launch_options(flags),
        )
    except launch.LaunchError as error:  # E.g. a Ray cluster that cannot place a group: nothing was started.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    status = {"solved": "solved", "user": "stopped"}.get(result.get("stopped_by"), "not solved")
    if result.get("stopped_by") == "budget" and result.get("solved"):
        status = f"trained to the budget (solved at {result['solved_at_actor_steps']:,} actor steps)"
    eval_return = result["eval_return"]
    resumed = f" (resumed from {result['resumed_from']})" if result.get("resumed_from") else ""
    print(
        f"{status} in {result['wall_seconds']:.1f}s{resumed}: eval return "
        f"{'-' if eval_return is None else format(eval_return, '.1f')}, "
        f"{result['actor_steps']:,} actor steps, {result['learner_steps']:,} learner steps. "
        f"Plot: {os.path.join(run_dir, 'learning_curve.png')}"
    )
    builder = experiment.builder
    resumable = builder.resumable if isinstance(builder, core.ProgramBuilder) else builder.num_learners() == 1
    if result.get("stopped_by") == "user" and resumable:
        print(f"Continue it with: python -m agents.run --resume {run_dir}")
    return result


def _resumed_flags(run_dir: str, given: Dict[str, Any]) -> tuple:
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise UsageError(
            f"--resume {run_dir}: not a run directory (no config.json); pass the run_dir a "
            "previous `python -m agents.run` printed."
        )
    saved = utils.read_json(path)
    flags = {**_DEFAULTS, **{key: saved[key] for key in _RUN_FLAGS if key in saved}, **given}
    if flags["agent"] != saved.get("agent", flags["agent"]):
        raise UsageError(f"--resume {run_dir}: the run is of agent {saved['agent']!r}; drop --agent.")
    result_path = os.path.join(run_dir, "result.json")
    if os.path.exists(result_path):
        os.remove(result_path)  # Rewritten by the continued run, with resumed_from.
    return flags, saved.get("config", {})


def _new_run_dir(run_dir: Optional[str]) -> str:
    if run_dir is not None:
        if os.path.exists(run_dir) and not os.path.isdir(run_dir):
            raise UsageError(f"--run_dir {run_dir} is a file; pass a new or empty directory.")
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            raise UsageError(
                f"--run_dir {run_dir} is not empty; continue that run with --resume {run_dir}, or pass a new directory."
            )
    return utils.make_run_dir(run_dir)


def _or_usage_error(fn, *args):
    try:
        return fn(*args)
    except ValueError as error:
        raise UsageError(str(error)) from None


def run_script(argv: List[str], start_time: float) -> None:
    """The command line: `main`, then the exit status a shell expects of a run stopped with Ctrl-C."""
    # A process started with SIGINT ignored (a background job of a script) would otherwise never see Ctrl-C or
    # `kill -INT` as KeyboardInterrupt; the single-process loop stops on it with a checkpoint and a result.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stopped_by = main(argv, start_time=start_time).get("stopped_by")
    except KeyboardInterrupt:  # Ctrl-C before the program's nodes started.
        print("interrupted", file=sys.stderr)
        stopped_by = "user"
    if stopped_by == "user":
        raise SystemExit(128 + signal.SIGINT)


if __name__ == "__main__":
    run_script(sys.argv[1:], _START_TIME)
