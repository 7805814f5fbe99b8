"""Time to solve CartPole-v1: distributed Ape-X DQN vs single-process DQN vs Stable-Baselines3 DQN.

Solved means a greedy mean return >= 475 over 10 evaluation episodes; time counts
from process launch (interpreter start-up and imports included) to that
evaluation. Each variant runs in fresh processes, once per seed. Also measures
one actor's env steps/s against a bare environment + Reverb writer loop, and
where the time goes (TF import, first tf.function trace, rate-limiter waits,
parameter staleness).

    python benchmarks/dqn_cartpole.py [--seeds 3] [--quick] [--json PATH]

SB3 runs only when stable-baselines3 and torch are installed (else null).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLVED_RETURN = 475.0
EVAL_EPISODES = 10

# rl-baselines3-zoo hyperparameters for DQN on CartPole-v1.
SB3_ZOO_DQN = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                   gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                   exploration_fraction=0.16, exploration_final_eps=0.04,
                   policy_kwargs=dict(net_arch=[256, 256]))
SB3_EVAL_PERIOD = 500  # Env steps between greedy evaluations of the SB3 policy.


def _env() -> Dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _csv_columns(path: str) -> Dict[str, List[float]]:
    sys.path.insert(0, REPO)
    from agents.utils.plotting import read_csv_log  # pylint: disable=import-outside-toplevel
    return read_csv_log(path) if os.path.exists(path) else {}


def _rate(columns: Dict[str, List[float]], key: str) -> Optional[float]:
    """Steps per second of `key` between the first and last rows of a log."""
    if len(columns.get(key, [])) < 2:
        return None
    span = columns["timestamp"][-1] - columns["timestamp"][0]
    return (columns[key][-1] - columns[key][0]) / span if span > 0 else None


def run_encore(seed: int, single_process: bool, max_seconds: float, num_actors: int,
               work_dir: str) -> Dict[str, Any]:
    """One `python -m agents.dqn.run` process; returns its result plus timings from the logs."""
    run_dir = os.path.join(work_dir, f"{'single' if single_process else 'distributed'}_{seed}")
    command = [sys.executable, "-m", "agents.dqn.run", "--seed", str(seed), "--run_dir", run_dir,
               "--max_seconds", str(max_seconds)]
    command += ["--single_process"] if single_process else ["--num_actors", str(num_actors)]
    launched = time.time()
    completed = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True,
                               timeout=max_seconds + 120, check=False)
    exited = time.time()
    result_path = os.path.join(run_dir, "result.json")
    if completed.returncode != 0 or not os.path.exists(result_path):
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n"
                           f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    result = _read_json(result_path)
    script_start = _read_json(os.path.join(run_dir, "config.json"))["start_time"]
    result["interpreter_start_seconds"] = script_start - launched
    result["seconds"] = script_start - launched + result["wall_seconds"]  # Launch to solved.
    result["process_seconds"] = exited - launched
    logs = os.path.join(run_dir, "logs")
    actor_logs = [_csv_columns(os.path.join(logs, name)) for name in sorted(os.listdir(logs))
                  if name.startswith("actor")]
    first_rows = [c["timestamp"][0] for c in actor_logs if c.get("timestamp")]
    result["first_episode_seconds"] = (min(first_rows) - launched) if first_rows else None
    rates = [r for r in (_rate(c, "actor_steps") for c in actor_logs) if r]
    result["actor_steps_per_second"] = max(rates) if rates else None
    result["learner_steps_per_second"] = _rate(_csv_columns(os.path.join(logs, "learner.csv")),
                                               "learner_steps")
    learner_log = _csv_columns(os.path.join(logs, "learner.csv"))
    staleness = []
    if len(learner_log.get("timestamp", [])) >= 2:
        import numpy as np  # pylint: disable=import-outside-toplevel
        for columns in actor_logs:  # Learner steps at each actor row's time minus its version.
            for at, version in zip(columns.get("timestamp", []), columns.get("parameter_version", [])):
                if version >= 0 and learner_log["timestamp"][0] <= at <= learner_log["timestamp"][-1]:
                    staleness.append(float(np.interp(at, learner_log["timestamp"],
                                                     learner_log["learner_steps"])) - version)
    result["median_parameter_staleness"] = statistics.median(staleness) if staleness else None
    return result


def sb3_available() -> bool:
    probe = "import stable_baselines3, torch; assert torch.__version__.startswith('2.')"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False).returncode == 0


def run_sb3(seed: int, max_seconds: float) -> Dict[str, Any]:
    launched = time.time()
    completed = subprocess.run([sys.executable, __file__, "--sb3_worker", str(seed), str(max_seconds)],
                               env=_env(), capture_output=True, text=True,
                               timeout=max_seconds + 120, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"SB3 worker failed:\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["seconds"] = result.pop("solved_at") - launched if result["solved"] else None
    return result


def sb3_worker(seed: int, max_seconds: float) -> None:
    """Trains SB3 DQN (zoo hyperparameters), evaluating greedily every SB3_EVAL_PERIOD steps."""
    # SB3 imports TensorBoard's writer when it can, which imports TensorFlow (~4 s here): SB3 on its
    # own machine would not pay that, so it is kept out.
    sys.modules["tensorboard"] = None  # type: ignore[assignment]
    import gymnasium  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    from stable_baselines3 import DQN  # pylint: disable=import-outside-toplevel
    from stable_baselines3.common.callbacks import BaseCallback  # pylint: disable=import-outside-toplevel

    start = time.time()
    eval_env = gymnasium.make("CartPole-v1")
    state = {"solved": False, "solved_at": None, "eval_return": None}

    class SolveCheck(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % SB3_EVAL_PERIOD:
                return time.time() - start < max_seconds
            returns = []
            for episode in range(EVAL_EPISODES):
                observation, _ = eval_env.reset(seed=10_000 + seed * 100 + episode)
                done, total = False, 0.0
                while not done:
                    action, _ = self.model.predict(observation, deterministic=True)
                    observation, reward, terminated, truncated, _ = eval_env.step(action)
                    total += reward
                    done = terminated or truncated
                returns.append(total)
            state["eval_return"] = float(np.mean(returns))
            if state["eval_return"] >= SOLVED_RETURN:
                state.update(solved=True, solved_at=time.time())
                return False
            return time.time() - start < max_seconds

    model = DQN("MlpPolicy", "CartPole-v1", seed=seed, verbose=0, **SB3_ZOO_DQN)
    model.learn(total_timesteps=50_000, callback=SolveCheck())
    print(json.dumps({**state, "actor_steps": int(model.num_timesteps)}))


def actor_throughput(num_steps: int) -> Dict[str, float]:
    """Env steps/s of one DQN actor (numpy policy + n-step adder) vs a bare env + writer loop."""
    sys.path.insert(0, REPO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import replay
    from agents import EnvironmentLoop, envs, utils
    from agents.dqn import DQNBuilder, DQNConfig
    # pylint: enable=import-outside-toplevel
    config = DQNConfig(max_replay_size=4 * num_steps)
    builder = DQNBuilder(config)
    environment = envs.make_environment("CartPole-v1", seed=0)
    spec = replay.make_environment_spec(environment)
    with replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False)) as server:
        client = server.client()
        rng = np.random.default_rng(0)
        start, steps = time.perf_counter(), 0
        with client.trajectory_writer(num_keep_alive_refs=2) as writer:
            while steps < num_steps:
                timestep = environment.reset()
                while not timestep.last():
                    action = np.int64(rng.integers(2))
                    next_timestep = environment.step(action)
                    writer.append({"observation": timestep.observation, "action": action,
                                   "reward": next_timestep.reward, "discount": next_timestep.discount,
                                   "next_observation": next_timestep.observation})
                    item = {k: writer.history[k][-1] for k in ("observation", "action", "reward",
                                                               "discount", "next_observation")}
                    writer.create_item(config.replay_table_name, 1.0, replay.Transition(**item))
                    writer.flush(16)
                    timestep = next_timestep
                    steps += 1
                writer.end_episode()
        bare = steps / (time.perf_counter() - start)
        client.reset(config.replay_table_name)

        network, _ = builder.make_networks(spec, seed=0)
        variable_server = utils.VariableServer()
        variable_server.update(network.numpy_parameters())
        variable_client = utils.VariableClient(variable_server, config.variable_update_period)
        actor = builder.make_actor(spec, variable_client, epsilon=0.1, adder=builder.make_adder(client))
        actor.update(wait=True)
        loop = EnvironmentLoop(environment, actor)
        start = time.perf_counter()
        steps = loop.run(num_steps=num_steps)
        actor_rate = steps / (time.perf_counter() - start)
        variable_client.close()
    return {"bare_env_writer_steps_per_second": bare, "actor_steps_per_second": actor_rate,
            "actor_fraction_of_bare": actor_rate / bare}


def tf_import_seconds() -> float:
    start = time.time()
    subprocess.run([sys.executable, "-c", "import tensorflow, reverb"], env=_env(), check=True,
                   capture_output=True)
    return time.time() - start


def first_trace_seconds() -> Dict[str, float]:
    """Seconds of the learner's first step (tf.function trace) vs a later gradient step, on batches in memory."""
    sys.path.insert(0, REPO)
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import reverb
    import tensorflow as tf
    import replay
    from agents import envs
    from agents.dqn import DQNBuilder, DQNConfig
    # pylint: enable=import-outside-toplevel
    config = DQNConfig()
    builder = DQNBuilder(config)
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1"))
    signature = replay.NStepTransitionAdder.signature(spec)
    batch = config.batch_size * config.num_sgd_steps_per_step
    data = tf.nest.map_structure(lambda s: tf.zeros((batch, *s.shape), s.dtype), signature)
    info = reverb.SampleInfo(key=tf.zeros([batch], tf.uint64), probability=tf.fill([batch], 0.01),
                             table_size=tf.fill([batch], np.int64(1000)),
                             priority=tf.ones([batch], tf.float64),
                             times_sampled=tf.zeros([batch], tf.int32))
    iterator = iter(tf.data.Dataset.from_tensors(reverb.ReplaySample(info, data)).repeat())
    learner = builder.make_learner(builder.make_networks(spec), iterator)
    start = time.perf_counter()
    learner.step()
    first = time.perf_counter() - start
    start = time.perf_counter()
    learner.run(num_steps=200)
    return {"first_learner_step_seconds": first,
            "later_sgd_step_ms": 1e3 * (time.perf_counter() - start) / (200 * config.num_sgd_steps_per_step)}


def _median(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def time_to_solve_median(runs: List[Dict[str, Any]]) -> Optional[float]:
    """Median seconds to solve over all seeds, an unsolved seed counting as never (None if that is the median)."""
    if not runs:
        return None
    median = statistics.median([r["seconds"] if r["solved"] else float("inf") for r in runs])
    return None if median == float("inf") else median


def _row(name: str, runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    solved = [r for r in runs if r["solved"]]
    return {
        "variant": name, "solved": f"{len(solved)}/{len(runs)}",
        "median_seconds": time_to_solve_median(runs),
        "median_env_steps": _median([r["actor_steps"] for r in solved]) if solved else None,
        "actor_steps_per_s": _median([r.get("actor_steps_per_second") for r in runs]),
        "learner_steps_per_s": _median([r.get("learner_steps_per_second") for r in runs]),
    }


def _print_table(rows: List[Dict[str, Any]]) -> None:
    headers = list(rows[0])
    cells = [[("-" if row[h] is None else f"{row[h]:,.1f}" if isinstance(row[h], float)
               else f"{row[h]:,}" if isinstance(row[h], int) else str(row[h])) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--sb3_worker":
        sb3_worker(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed, shorter budgets")
    parser.add_argument("--max_seconds", type=float, default=120.0, help="budget per run")
    parser.add_argument("--num_actors", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    seeds = list(range(1 if args.quick else args.seeds))
    max_seconds = min(args.max_seconds, 60.0) if args.quick else args.max_seconds

    runs: Dict[str, List[Dict[str, Any]]] = {"distributed": [], "single_process": [], "sb3": []}
    with tempfile.TemporaryDirectory(prefix="dqn-bench-") as work_dir:
        for seed in seeds:
            runs["distributed"].append(run_encore(seed, False, max_seconds, args.num_actors, work_dir))
            runs["single_process"].append(run_encore(seed, True, max_seconds, 1, work_dir))
    has_sb3 = sb3_available()
    if has_sb3:
        runs["sb3"] = [run_sb3(seed, max_seconds) for seed in seeds]

    rows = [_row(f"encore distributed ({args.num_actors} actors, local_mp)", runs["distributed"]),
            _row("encore single process", runs["single_process"])]
    if has_sb3:
        rows.append(_row("sb3 DQN (zoo)", runs["sb3"]))
    print(f"CartPole-v1 time to solve (greedy mean of {EVAL_EPISODES} episodes >= {SOLVED_RETURN:g}), "
          f"{len(seeds)} seed(s), launch to solved, budget {max_seconds:g} s a run "
          "(an unsolved seed counts as never; '-' = the median seed did not solve):")
    _print_table(rows)
    if not has_sb3:
        print("sb3: skipped (stable-baselines3 / torch not installed)")

    throughput = actor_throughput(20_000 if not args.quick else 5_000)
    overheads = {"tf_reverb_import_seconds": tf_import_seconds(), **first_trace_seconds()}
    distributed = runs["distributed"]
    where = {
        "interpreter_start_seconds": _median([r["interpreter_start_seconds"] for r in distributed]),
        "distributed_first_episode_seconds": _median([r["first_episode_seconds"] for r in distributed]),
        "single_first_episode_seconds": _median(
            [r["first_episode_seconds"] for r in runs["single_process"]]),
        "replay_waiting_for_inserts_ms": _median(
            [r.get("replay_waiting_for_inserts_ms") for r in distributed]),
        "replay_waiting_for_sampling_ms": _median(
            [r.get("replay_waiting_for_sampling_ms") for r in distributed]),
        "median_parameter_staleness_learner_steps": _median(
            [r["median_parameter_staleness"] for r in distributed]),
        **overheads, **throughput,
    }
    print("\nOne actor vs a bare env + Reverb writer loop, and where the time goes:")
    for key, value in where.items():
        print(f"  {key:45s} {'-' if value is None else format(value, ',.3f')}")

    results = {
        "distributed_seconds": time_to_solve_median(runs["distributed"]),
        "single_process_seconds": time_to_solve_median(runs["single_process"]),
        "sb3_seconds": time_to_solve_median(runs["sb3"]) if has_sb3 else None,
        "seeds": len(seeds), "table": rows, "where_time_goes": where, "runs": runs,
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
