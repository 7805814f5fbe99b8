"""Time to solve an environment: an Encore agent (distributed and single-process) vs Stable-Baselines3 baselines.

    python benchmarks/time_to_solve.py [--agent dqn] [--env CartPole-v1] [--seeds 3]
        [--baselines sb3_dqn[,sb3_ppo,sb3_a2c,sb3_qrdqn,sb3_trpo,sb3_td3,sb3_sac]] [--max_seconds 120] [--num_actors 2]
        [--quick] [--runs_dir DIR] [--json PATH]

Per seed, each variant runs in a fresh process:

- `distributed`: `python -m agents.run --agent A --env E --seed S --run_dir D --max_seconds S --num_actors K`
  (the module is RUN_MODULE below);
- `single_process`: the same plus `--single_process`;
- each named baseline that is installed: `sb3_dqn`, `sb3_ppo`, `sb3_a2c`, `sb3_td3`, `sb3_sac`
  (stable-baselines3) and `sb3_qrdqn`, `sb3_trpo` (sb3-contrib), trained by this script in a worker process.
  Where ZOO_HYPERPARAMETERS has an entry (the discrete baselines on CartPole-v1, TD3 and SAC on Pendulum-v1) they
  use the rl-baselines3-zoo hyperparameters (hyperparams/<algo>.yml, including the zoo's n_envs and its
  n_timesteps as the training length, which the zoo's linear schedules depend on; `noise_type: normal` with
  `noise_std` is the zoo's Gaussian action noise); elsewhere SB3's defaults with one environment and 1M steps.
  The table says which.

The criterion is the same for all: the greedy mean return over the evaluation episodes (the Encore run's
`eval_episodes`, else 10) reaches `agents.envs.solved_return(env)`. Baselines are evaluated every 500 env
steps the way Encore's evaluator does it: one screening episode, then the full evaluation only if it reached
the solving return, stopping early once `agents.envs.max_return(env)` per remaining episode could not lift the
mean to it. Time counts from process launch (interpreter start and imports included) to the solving
evaluation. An unsolved seed counts as never, so `median_seconds` is null when half or more seeds did not solve.

Every run's process gets a deadline (its budget + DEADLINE_MARGIN_SECONDS) and is killed with its whole
process group at it (and any of its processes still alive when it exits are killed too).

JSON (--json):
    {"agent", "env", "variants": {NAME: {"median_seconds", "solved", "seeds", "per_seed_seconds",
     "median_env_steps"}}, "not_installed": [...], "details": {NAME: {description, runs, ...}}, ...}
with NAME in `distributed`, `single_process` and the installed baselines; `solved` is the number of seeds that
solved, `seeds` the number run, `per_seed_seconds` null for a seed that did not solve. A requested baseline
that is not installed is absent from "variants" and listed in "not_installed" (and as "not installed" in the
table). The process exits with status 1 when a run crashed (a run that is merely unsolved is not an error).

`make bench` runs the agents' aliases (e.g. `benchmarks/dqn_cartpole.py`), which call this script's
`measure`; it does not run this script on its own.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# The Encore training entry point (flags: --agent, --env, --seed, --run_dir, --max_seconds, --num_actors,
# --single_process; writes config.json with start_time and result.json). "agents.dqn.run" has the same
# contract without --agent (DQN only).
RUN_MODULE = "agents.run"

DEFAULT_EVAL_EPISODES = 10  # When the Encore run's config.json does not say.
DEADLINE_MARGIN_SECONDS = 60.0  # A run's process is killed this long after its budget.
SB3_EVAL_PERIOD = 500  # Env steps between greedy evaluations of a baseline's policy.
SB3_DEFAULT_TIMESTEPS = 1_000_000  # Training length of a baseline without zoo hyperparameters.
SB3_TORCH_THREADS = 1  # torch.set_num_threads in a baseline worker (see baseline_worker).
VARIANTS = ("distributed", "single_process")


class UsageError(ValueError):
    """Settings that cannot be measured (unknown baseline or agent for RUN_MODULE, env without a threshold)."""


# rl-baselines3-zoo hyperparameters (hyperparams/<algo>.yml). "lin_X" is the zoo's linear schedule from X to 0
# over n_timesteps. Environments without an entry here use SB3's defaults.
_ZOO_DQN_CARTPOLE: Dict[str, Any] = dict(  # QR-DQN's zoo entry is the same but for n_quantiles.
    n_timesteps=50_000,
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
# rl-baselines3-zoo's Pendulum-v1 entries for the continuous baselines (as issue 14 lists them): 10k random steps,
# then one gradient step per env step; both reach about -150 within their 20k steps in the zoo.
_ZOO_PENDULUM_COMMON: Dict[str, Any] = dict(n_timesteps=20_000, learning_rate=1e-3, gamma=0.98, learning_starts=10_000)
# PPO's CartPole-v1 entry, which ppo_lstm.yml's CartPoleNoVel-v1 entry repeats.
_ZOO_PPO_CARTPOLE: Dict[str, Any] = dict(
    n_envs=8,
    n_timesteps=100_000,
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate="lin_0.001",
    clip_range="lin_0.2",
)
ZOO_HYPERPARAMETERS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "sb3_dqn": {"CartPole-v1": _ZOO_DQN_CARTPOLE},
    "sb3_ppo": {"CartPole-v1": _ZOO_PPO_CARTPOLE},
    "sb3_a2c": {"CartPole-v1": dict(n_envs=8, n_timesteps=500_000, ent_coef=0.0)},
    "sb3_qrdqn": {"CartPole-v1": {**_ZOO_DQN_CARTPOLE, "policy_kwargs": dict(net_arch=[256, 256], n_quantiles=10)}},
    "sb3_trpo": {
        "CartPole-v1": dict(
            n_envs=2,
            n_timesteps=100_000,
            n_steps=512,
            batch_size=512,
            cg_damping=1e-3,
            gae_lambda=0.98,
            gamma=0.99,
            learning_rate=1e-3,
            n_critic_updates=20,
        )
    },
    "sb3_td3": {
        "Pendulum-v1": dict(
            _ZOO_PENDULUM_COMMON,
            buffer_size=200_000,
            noise_type="normal",
            noise_std=0.1,
            gradient_steps=1,
            train_freq=1,
            policy_kwargs=dict(net_arch=[400, 300]),
        )
    },
    "sb3_sac": {"Pendulum-v1": dict(_ZOO_PENDULUM_COMMON)},
    # hyperparams/ppo_lstm.yml; `normalize` is the zoo's VecNormalize of observations (not rewards), and
    # activation_fn names a torch.nn class.
    "sb3_recurrent_ppo": {
        "CartPoleNoVel-v1": dict(
            _ZOO_PPO_CARTPOLE,
            policy="MlpLstmPolicy",
            normalize=True,
            policy_kwargs=dict(
                ortho_init=False,
                activation_fn="ReLU",
                lstm_hidden_size=64,
                enable_critic_lstm=True,
                net_arch=dict(pi=[64], vf=[64]),
            ),
        )
    },
}

# Baseline name -> (package to import, algorithm class, label).
BASELINES: Dict[str, Tuple[str, str, str]] = {
    "sb3_dqn": ("stable_baselines3", "DQN", "SB3 DQN"),
    "sb3_ppo": ("stable_baselines3", "PPO", "SB3 PPO"),
    "sb3_a2c": ("stable_baselines3", "A2C", "SB3 A2C"),
    "sb3_qrdqn": ("sb3_contrib", "QRDQN", "sb3-contrib QR-DQN"),
    "sb3_trpo": ("sb3_contrib", "TRPO", "sb3-contrib TRPO"),
    "sb3_td3": ("stable_baselines3", "TD3", "SB3 TD3"),
    "sb3_sac": ("stable_baselines3", "SAC", "SB3 SAC"),
    "sb3_recurrent_ppo": ("sb3_contrib", "RecurrentPPO", "sb3-contrib RecurrentPPO"),
}


# --------------------------------------------------------------------------------------------------- processes


def subprocess_env() -> Dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def _kill_group(process: subprocess.Popen, grace_seconds: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_seconds`, to the process group `process` leads (one started here)."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        end = time.time() + wait
        while time.time() < end:
            process.poll()  # Reaps the leader, which would otherwise keep the group alive as a zombie.
            try:
                os.killpg(process.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


def run_process(command: Sequence[str], deadline_seconds: float, log_prefix: str) -> Dict[str, Any]:
    """Runs `command` in its own process group, output to log_prefix.{out,err}, killed at the deadline.

    Returns launched/exited times (time.time()), the return code (None when killed at the deadline),
    `killed_at_deadline` and the output tails.
    """
    with (
        open(log_prefix + ".out", "w", encoding="utf-8") as out,
        open(log_prefix + ".err", "w", encoding="utf-8") as err,
    ):
        launched = time.time()
        process = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=subprocess_env(),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        killed = False
        try:
            returncode: Optional[int] = process.wait(timeout=deadline_seconds)
        except subprocess.TimeoutExpired:
            killed, returncode = True, None
        finally:  # Also on KeyboardInterrupt; also leftovers (e.g. node processes) of a process that exited.
            _kill_group(process, grace_seconds=5.0 if process.poll() is None else 0.5)
            if process.poll() is None:
                process.kill()
            process.wait()
        exited = time.time()
    return {
        "launched": launched,
        "exited": exited,
        "returncode": returncode,
        "killed_at_deadline": killed,
        "stdout_tail": _tail(log_prefix + ".out", 2000),
        "stderr_tail": _tail(log_prefix + ".err", 4000),
    }


def _tail(path: str, chars: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-chars:]


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -------------------------------------------------------------------------------------------------- Encore runs


def _csv_columns(path: str) -> Dict[str, List[float]]:
    from agents.utils.plotting import read_csv_log  # pylint: disable=import-outside-toplevel

    return read_csv_log(path) if os.path.exists(path) else {}


def _rate(columns: Dict[str, List[float]], key: str) -> Optional[float]:
    """Steps per second of `key` between the first and last rows of a log."""
    if len(columns.get(key, [])) < 2:
        return None
    span = columns["timestamp"][-1] - columns["timestamp"][0]
    return (columns[key][-1] - columns[key][0]) / span if span > 0 else None


def encore_log_stats(run_dir: str, launched: float) -> Dict[str, Optional[float]]:
    """What the CSV logs of an Encore run say: first actor row, actor and learner rates, parameter staleness."""
    logs = os.path.join(run_dir, "logs")
    names = sorted(os.listdir(logs)) if os.path.isdir(logs) else []
    actor_logs = [_csv_columns(os.path.join(logs, name)) for name in names if name.startswith("actor")]
    learner_log = _csv_columns(os.path.join(logs, "learner.csv"))
    # Several learners (learner_<id>.csv) each log their own steps: the program's rate is their sum.
    learner_rates = [
        _rate(_csv_columns(os.path.join(logs, name)), "learner_steps") for name in names if name.startswith("learner")
    ]
    learner_rates = [rate for rate in learner_rates if rate]
    first_rows = [c["timestamp"][0] for c in actor_logs if c.get("timestamp")]
    # Each actor's CPU seconds at its last row over the steps of its own episodes (actor_steps is the program's).
    actor_cpu = [(c["cpu_seconds"][-1], sum(c["episode_length"])) for c in actor_logs if c.get("cpu_seconds")]
    rates = [r for r in (_rate(c, "actor_steps") for c in actor_logs) if r]
    staleness = []
    if len(learner_log.get("timestamp", [])) >= 2:
        import numpy as np  # pylint: disable=import-outside-toplevel

        for columns in actor_logs:  # Learner steps at each actor row's time minus its parameter version.
            for at, version in zip(columns.get("timestamp", []), columns.get("parameter_version", [])):
                if version >= 0 and learner_log["timestamp"][0] <= at <= learner_log["timestamp"][-1]:
                    staleness.append(
                        float(np.interp(at, learner_log["timestamp"], learner_log["learner_steps"])) - version
                    )
    return {
        "first_episode_seconds": (min(first_rows) - launched) if first_rows else None,
        "actor_steps_per_second": max(rates) if rates else None,
        "learner_steps_per_second": sum(learner_rates) if learner_rates else None,
        "median_parameter_staleness": statistics.median(staleness) if staleness else None,
        "actor_cpu_ms_per_env_step": 1e3 * sum(c for c, _ in actor_cpu) / sum(n for _, n in actor_cpu)
        if actor_cpu and sum(n for _, n in actor_cpu) > 0
        else None,
    }


def train_to_budget(
    agent: str, run_dir: str, seconds: float, num_actors: int, extra_args: Sequence[str] = ()
) -> Tuple[Optional[str], Dict[str, Any], Dict[str, Optional[float]]]:
    """Trains `agent` on CartPole-v1 for `seconds` (start-up included) without evaluations, which would take the
    workers' cores: (an error if the run wrote no result.json, else None; the result's parameter_server stats;
    encore_log_stats of its logs)."""
    command = [
        *encore_command(agent, "CartPole-v1", 0, run_dir, seconds, num_actors, False),
        *("--stop_when_solved", "false", "--eval_every", str(10**12)),
        *extra_args,
    ]
    process = run_process(command, seconds + DEADLINE_MARGIN_SECONDS, run_dir + ".process")
    result_path = os.path.join(run_dir, "result.json")
    if not os.path.exists(result_path):
        return f"exit code {process['returncode']}, no result.json:\n{process['stderr_tail']}", {}, {}
    server = _read_json(result_path).get("parameter_server") or {}
    return None, server, encore_log_stats(run_dir, process["launched"])


def encore_command(
    agent: str, env: str, seed: int, run_dir: str, max_seconds: float, num_actors: int, single_process: bool
) -> List[str]:
    command = [sys.executable, "-m", RUN_MODULE]
    if RUN_MODULE == "agents.dqn.run":
        if agent != "dqn":
            raise UsageError(f"{RUN_MODULE} runs only --agent dqn (got {agent!r}).")
    else:
        command += ["--agent", agent]
    command += [
        "--env",
        env,
        "--seed",
        str(seed),
        "--run_dir",
        run_dir,
        "--max_seconds",
        f"{max_seconds:g}",
        "--num_actors",
        str(num_actors),
    ]
    return command + (["--single_process"] if single_process else [])


def run_encore(
    agent: str,
    env: str,
    seed: int,
    single_process: bool,
    max_seconds: float,
    num_actors: int,
    work_dir: str,
    variant: Optional[str] = None,
    extra_args: Sequence[str] = (),
    command_prefix: Sequence[str] = (),
) -> Dict[str, Any]:
    """One Encore training process. `seconds` is launch to solved (None if it did not solve). `extra_args` go
    to the run script (e.g. --launch_type ray), which runs under `command_prefix` (e.g. nsenter ...)."""
    variant = variant or ("single_process" if single_process else "distributed")
    run_dir = os.path.join(work_dir, f"{variant}_{seed}")
    command = [
        *command_prefix,
        *encore_command(agent, env, seed, run_dir, max_seconds, num_actors, single_process),
        *extra_args,
    ]
    process = run_process(command, max_seconds + DEADLINE_MARGIN_SECONDS, run_dir + ".process")
    run: Dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "command": " ".join(command[1:]),
        "solved": False,
        "seconds": None,
        "env_steps": None,
        "error": None,
        "killed_at_deadline": process["killed_at_deadline"],
        "process_seconds": process["exited"] - process["launched"],
    }
    result_path, config_path = os.path.join(run_dir, "result.json"), os.path.join(run_dir, "config.json")
    if not os.path.exists(result_path) or not os.path.exists(config_path):
        if not process["killed_at_deadline"]:
            run["error"] = (
                f"exit code {process['returncode']}, no result.json:\n{process['stdout_tail']}\n"
                f"{process['stderr_tail']}"
            )
        return run
    result, config = _read_json(result_path), _read_json(config_path)
    interpreter_start = config["start_time"] - process["launched"]
    agent_config = config.get("agent") if isinstance(config.get("agent"), dict) else {}
    run.update(
        solved=bool(result.get("solved")),
        env_steps=result.get("actor_steps"),
        interpreter_start_seconds=interpreter_start,
        eval_episodes=agent_config.get("eval_episodes", config.get("eval_episodes")),
        result=result,
        **encore_log_stats(run_dir, process["launched"]),
    )
    if result.get("learner_cpu_seconds") is not None and result.get("learner_steps"):
        run["learner_cpu_ms_per_learner_step"] = 1e3 * result["learner_cpu_seconds"] / result["learner_steps"]
    if result.get("cpu_seconds") is not None and result.get("actor_steps"):  # A single-process run: all of it.
        run["cpu_ms_per_env_step"] = 1e3 * result["cpu_seconds"] / result["actor_steps"]
    if run["solved"]:
        run["seconds"] = interpreter_start + result["wall_seconds"]
    if process["returncode"] not in (0, None) and not run["solved"]:
        run["error"] = f"exit code {process['returncode']}:\n{process['stderr_tail']}"
    return run


# ------------------------------------------------------------------------------------------------- baselines


def baseline_installed(name: str) -> bool:
    package = BASELINES[name][0]
    probe = f"import {package}, torch"
    try:
        return (
            subprocess.run(
                [sys.executable, "-c", probe], env=subprocess_env(), capture_output=True, timeout=300, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def baseline_hyperparameters(name: str, env: str) -> Tuple[Dict[str, Any], str]:
    """(hyperparameters incl. n_envs / n_timesteps, where they come from)."""
    zoo = ZOO_HYPERPARAMETERS.get(name, {}).get(env)
    if zoo is not None:
        return dict(zoo), "rl-baselines3-zoo hyperparameters"
    return {
        "n_envs": 1,
        "n_timesteps": SB3_DEFAULT_TIMESTEPS,
    }, f"SB3 defaults, 1 env, {SB3_DEFAULT_TIMESTEPS:,} steps (no zoo hyperparameters here for {name} on {env})"


def describe(name: str, agent: str, env: str, num_actors: int) -> str:
    if name == "distributed":
        return f"Encore {agent}, {num_actors} actors"
    if name == "single_process":
        return f"Encore {agent}, --single_process"
    return f"{BASELINES[name][2]}, {baseline_hyperparameters(name, env)[1]}"


def run_baseline(
    name: str, env: str, seed: int, max_seconds: float, eval_episodes: int, work_dir: str
) -> Dict[str, Any]:
    """One baseline worker process. `seconds` is launch to solved (None if it did not solve)."""
    spec = {
        "baseline": name,
        "env": env,
        "seed": seed,
        "max_seconds": max_seconds,
        "eval_episodes": eval_episodes,
        "launched": time.time(),
        # SB3 makes a log folder for every model even when it logs nothing: in the run's work dir, not /tmp.
        "log_dir": os.path.join(work_dir, f"{name}_{seed}.sb3_log"),
    }
    process = run_process(
        [sys.executable, os.path.abspath(__file__), "--baseline_worker", json.dumps(spec)],
        max_seconds + DEADLINE_MARGIN_SECONDS,
        os.path.join(work_dir, f"{name}_{seed}"),
    )
    run: Dict[str, Any] = {
        "variant": name,
        "seed": seed,
        "solved": False,
        "seconds": None,
        "env_steps": None,
        "error": None,
        "killed_at_deadline": process["killed_at_deadline"],
        "process_seconds": process["exited"] - process["launched"],
    }
    lines = process["stdout_tail"].strip().splitlines()
    if process["returncode"] != 0 or not lines:
        if not process["killed_at_deadline"]:
            run["error"] = f"exit code {process['returncode']}:\n{process['stderr_tail']}"
        return run
    result = json.loads(lines[-1])
    run.update(
        solved=result["solved"],
        env_steps=result["env_steps"],
        eval_return=result["eval_return"],
        training_ended=result["training_ended"],
    )
    if result["solved"]:
        run["seconds"] = result["solved_at"] - process["launched"]
    return run


def _linear(initial: float) -> Callable[[float], float]:
    return lambda progress_remaining: progress_remaining * initial


def baseline_worker(spec: Dict[str, Any]) -> None:
    """Trains one baseline, evaluating greedily every SB3_EVAL_PERIOD env steps; prints a JSON line."""
    launched = spec["launched"]
    # SB3 imports TensorBoard's writer when it can, which imports TensorFlow (~4 s here): SB3 on its own
    # machine would not pay that, so it is kept out.
    sys.modules["tensorboard"] = None  # type: ignore[assignment]
    os.environ["SB3_LOGDIR"] = spec["log_dir"]
    import importlib

    import gymnasium
    import numpy as np
    import torch

    # One intra-op thread: on this shared 2-core machine torch's two OpenMP threads spin against other processes
    # (a TD3 gradient step on Pendulum-v1 took 270 ms with 2 threads, 18 ms with 1, at load 10).
    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from agents import envs

    package, algorithm, _ = BASELINES[spec["baseline"]]
    algorithm_class = getattr(importlib.import_module(package), algorithm)
    env_name, seed, num_episodes = spec["env"], spec["seed"], spec["eval_episodes"]
    target, max_return = envs.solved_return(env_name), envs.max_return(env_name)
    hyperparameters, _ = baseline_hyperparameters(spec["baseline"], env_name)
    n_envs, n_timesteps = hyperparameters.pop("n_envs", 1), int(hyperparameters.pop("n_timesteps"))
    for key, value in hyperparameters.items():
        if isinstance(value, str) and value.startswith("lin_"):
            hyperparameters[key] = _linear(float(value[len("lin_") :]))
    eval_env = gymnasium.make(env_name)
    policy, normalize = hyperparameters.pop("policy", "MlpPolicy"), hyperparameters.pop("normalize", False)
    policy_kwargs = hyperparameters.get("policy_kwargs", {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        hyperparameters["policy_kwargs"] = {
            **policy_kwargs,
            "activation_fn": getattr(torch.nn, policy_kwargs["activation_fn"]),
        }
    noise_type, noise_std = hyperparameters.pop("noise_type", None), hyperparameters.pop("noise_std", None)
    if noise_type == "normal":  # The zoo's Gaussian action noise: N(0, noise_std) on every action dimension.
        from stable_baselines3.common.noise import NormalActionNoise

        size = int(np.prod(eval_env.action_space.shape))
        hyperparameters["action_noise"] = NormalActionNoise(np.zeros(size), noise_std * np.ones(size))
    elif noise_type is not None:
        raise ValueError(f"noise_type {noise_type!r} is not supported here (only 'normal').")
    state: Dict[str, Any] = {"solved": False, "solved_at": None, "eval_return": None, "evaluations": 0}

    def episode_return(model, episode: int) -> float:
        observation, _ = eval_env.reset(seed=10_000 + seed * 1000 + state["evaluations"] * 50 + episode)
        done, total = False, 0.0
        # A recurrent policy carries its state through the episode (others ignore both).
        policy_state, episode_start = None, np.ones(1, bool)
        while not done:
            if normalize:
                observation = training_env.normalize_obs(observation)
            action, policy_state = model.predict(
                observation, state=policy_state, episode_start=episode_start, deterministic=True
            )
            episode_start = np.zeros(1, bool)
            observation, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        return total

    def evaluate(model) -> bool:
        """Encore's solve_check: one screening episode, then the full evaluation, stopping early."""
        state["evaluations"] += 1
        if episode_return(model, 0) < target:
            return False
        returns: List[float] = []
        for episode in range(num_episodes):
            if max_return is not None and sum(returns) + (num_episodes - episode) * max_return < target * num_episodes:
                break
            returns.append(episode_return(model, 1 + episode))
        state["eval_return"] = float(np.mean(returns))
        return state["eval_return"] >= target

    class SolveCheck(BaseCallback):
        next_eval = SB3_EVAL_PERIOD

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += SB3_EVAL_PERIOD
                if evaluate(self.model):
                    state.update(solved=True, solved_at=time.time())
                    return False
            return time.time() - launched < spec["max_seconds"]

    training_env = make_vec_env(env_name, n_envs=n_envs, seed=seed)
    if normalize:
        from stable_baselines3.common.vec_env import VecNormalize

        training_env = VecNormalize(training_env, norm_obs=True, norm_reward=False)
    model = algorithm_class(policy, training_env, seed=seed, verbose=0, **hyperparameters)
    model.learn(total_timesteps=n_timesteps, callback=SolveCheck())
    print(
        json.dumps(
            {**state, "env_steps": int(model.num_timesteps), "training_ended": int(model.num_timesteps) >= n_timesteps}
        )
    )


# ------------------------------------------------------------------------------------------------ summaries


def median_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def time_to_solve_median(runs: Sequence[Dict[str, Any]]) -> Optional[float]:
    """Median seconds to solve over all seeds, an unsolved seed counting as never (None if that is the median)."""
    if not runs:
        return None
    median = statistics.median([r["seconds"] if r["solved"] else float("inf") for r in runs])
    return None if median == float("inf") else median


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """A variant's entry in the JSON's "variants"."""
    return {
        "median_seconds": time_to_solve_median(runs),
        "solved": sum(1 for r in runs if r["solved"]),
        "seeds": len(runs),
        "per_seed_seconds": [r["seconds"] if r["solved"] else None for r in runs],
        "median_env_steps": median_or_none([r["env_steps"] for r in runs if r["solved"]]),
    }


# ------------------------------------------------------------------------------------------------- measuring


def measure(
    agent: str = "dqn",
    env: str = "CartPole-v1",
    seeds: int = 3,
    baselines: Sequence[str] = ("sb3_dqn",),
    max_seconds: float = 120.0,
    num_actors: int = 2,
    runs_dir: Optional[str] = None,
    print_fn: Callable[[str], None] = print,
    variants: Sequence[str] = VARIANTS,
    more_variants: Optional[Dict[str, Tuple[str, List[str]]]] = None,
) -> Dict[str, Any]:
    """Measures time to solve; returns the JSON's contents. `variants`: which of VARIANTS the agent runs as;
    `more_variants`: {name: (description, more arguments of the run script)}, distributed runs measured after
    `distributed` (e.g. with --config changes)."""
    from agents import envs

    target = envs.solved_return(env)
    if target is None:
        raise UsageError(f"{env} has no solving return: add it to agents/envs/solved.py (SOLVED_RETURNS).")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise UsageError(f"unknown baselines {unknown}; known: {', '.join(BASELINES)}")
    encore_command(agent, env, 0, "", max_seconds, num_actors, False)  # Checks the agent against RUN_MODULE.
    try:
        from agents.registry import AGENTS  # pylint: disable=import-outside-toplevel
    except ImportError:
        AGENTS = {agent: ""}  # pylint: disable=invalid-name
    if agent not in AGENTS:
        raise UsageError(f"unknown agent {agent!r}; the agents are: {', '.join(sorted(AGENTS))}.")
    if runs_dir and os.path.isdir(runs_dir) and os.listdir(runs_dir):
        raise UsageError(f"--runs_dir {runs_dir} is not empty (the runs' directories must be new).")
    installed = [b for b in baselines if baseline_installed(b)]
    not_installed = [b for b in baselines if b not in installed]
    settings = {
        "agent": agent,
        "env": env,
        "seeds": seeds,
        "max_seconds": max_seconds,
        "num_actors": num_actors,
        "baselines": installed,
        "run_module": RUN_MODULE,
    }

    started = time.time()
    unknown_variants = [v for v in variants if v not in VARIANTS]
    if unknown_variants:
        raise UsageError(f"unknown variants {unknown_variants}; known: {', '.join(VARIANTS)}")
    more_variants = more_variants or {}
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in (*variants, *more_variants, *installed)}
    eval_episodes: Optional[int] = None
    with tempfile.TemporaryDirectory(prefix="time-to-solve-") as temporary:
        work_dir = runs_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        for seed in range(seeds):
            for name in runs:
                if name in VARIANTS:
                    run = run_encore(agent, env, seed, name == "single_process", max_seconds, num_actors, work_dir)
                    eval_episodes = eval_episodes or run.get("eval_episodes")
                elif name in more_variants:
                    extra_args = more_variants[name][1]
                    run = run_encore(agent, env, seed, False, max_seconds, num_actors, work_dir, name, extra_args)
                else:
                    run = run_baseline(name, env, seed, max_seconds, eval_episodes or DEFAULT_EVAL_EPISODES, work_dir)
                runs[name].append(run)
                status = (
                    "error"
                    if run["error"]
                    else f"solved in {run['seconds']:.1f} s"
                    if run["solved"]
                    else "killed at the deadline"
                    if run["killed_at_deadline"]
                    else "not solved"
                )
                print_fn(f"  seed {seed} {name}: {status}")
                if run["error"]:
                    print_fn("    " + run["error"].strip().replace("\n", "\n    "))
    return {
        "agent": agent,
        "env": env,
        "variants": {name: summarize(variant_runs) for name, variant_runs in runs.items()},
        "not_installed": not_installed,
        "solved_return": target,
        "eval_episodes": eval_episodes or DEFAULT_EVAL_EPISODES,
        "max_seconds": max_seconds,
        "num_actors": num_actors,
        "deadline_seconds": max_seconds + DEADLINE_MARGIN_SECONDS,
        "details": {
            name: {
                "description": more_variants[name][0]
                if name in more_variants
                else describe(name, agent, env, num_actors),
                "runs": variant_runs,
                **({"hyperparameters": baseline_hyperparameters(name, env)[0]} if name in BASELINES else {}),
            }
            for name, variant_runs in runs.items()
        },
        "errors": sum(1 for variant_runs in runs.values() for r in variant_runs if r["error"]),
        "settings": settings,
        "started_at": started,
        "finished_at": time.time(),
    }


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_table(measurement: Dict[str, Any], print_fn: Callable[[str], None] = print) -> None:
    """The readable table of a measurement (what measure() returns)."""
    m = measurement
    print_fn(
        f"{m['env']} time to solve, agent {m['agent']}: greedy mean return over {m['eval_episodes']} "
        f"evaluation episodes >= {m['solved_return']:g}, launch to solved, {m['settings']['seeds']} seed(s), "
        f"budget {m['max_seconds']:g} s a run (killed at {m['deadline_seconds']:g} s). An unsolved seed counts "
        "as never; median '-' = half or more seeds did not solve."
    )
    headers = [
        "variant",
        "what",
        "solved",
        "median s",
        "per seed s",
        "median env steps",
        "actor steps/s",
        "learner steps/s",
    ]
    rows = []
    for name, summary in m["variants"].items():
        runs = m["details"][name]["runs"]
        per_seed = ", ".join(
            _seconds(r["seconds"])
            if r["solved"]
            else "error"
            if r["error"]
            else "killed"
            if r["killed_at_deadline"]
            else "never"
            for r in runs
        )
        rows.append(
            [
                name,
                m["details"][name]["description"],
                f"{summary['solved']}/{summary['seeds']}",
                _seconds(summary["median_seconds"]),
                per_seed,
                "-" if summary["median_env_steps"] is None else f"{summary['median_env_steps']:,.0f}",
                _seconds(median_or_none([r.get("actor_steps_per_second") for r in runs])),
                _seconds(median_or_none([r.get("learner_steps_per_second") for r in runs])),
            ]
        )
    for name in m["not_installed"]:
        package = BASELINES[name][0].replace("_", "-")
        rows.append([name, f"{BASELINES[name][2]}: not installed (pip install {package})", *["-"] * 6])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print_fn("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        print_fn("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


# ------------------------------------------------------------------------------- shared by the agents' aliases


def where_time_goes(measurement: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Medians over the Encore runs' logs: start-up, first episode, replay waits, parameter staleness."""
    details, median = measurement["details"], median_or_none
    # Either variant may be missing from a measurement (e.g. distributed only): its rows are then None.
    distributed, single = (
        [] if name not in details else details[name]["runs"] for name in ("distributed", "single_process")
    )
    result = lambda key: [r.get("result", {}).get(key) for r in distributed]  # noqa: E731
    return {
        "interpreter_start_seconds": median([r.get("interpreter_start_seconds") for r in distributed]),
        "distributed_first_episode_seconds": median([r.get("first_episode_seconds") for r in distributed]),
        "single_first_episode_seconds": median([r.get("first_episode_seconds") for r in single]),
        "replay_waiting_for_inserts_ms": median(result("replay_waiting_for_inserts_ms")),
        "replay_waiting_for_sampling_ms": median(result("replay_waiting_for_sampling_ms")),
        "median_parameter_staleness_learner_steps": median([r.get("median_parameter_staleness") for r in distributed]),
        # CPU per unit of work (process time; the learner's includes its first trace, the single process everything).
        "distributed_actor_cpu_ms_per_env_step": median([r.get("actor_cpu_ms_per_env_step") for r in distributed]),
        "distributed_learner_cpu_ms_per_learner_step": median(
            [r.get("learner_cpu_ms_per_learner_step") for r in distributed]
        ),
        "single_process_cpu_ms_per_env_step": median([r.get("cpu_ms_per_env_step") for r in single]),
        "tf_reverb_import_seconds": tf_import_seconds(),
    }


def tf_import_seconds() -> float:
    """Seconds a fresh interpreter takes to import TensorFlow and Reverb."""
    start = time.time()
    subprocess.run(
        [sys.executable, "-c", "import tensorflow, reverb"],
        env=subprocess_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return time.time() - start


def learner_step_seconds(
    builder: Any, signature: Any, batch_size: int, num_steps: int = 200, env: str = "CartPole-v1"
) -> Tuple[float, float]:
    """(construction and first step, later steps' mean) seconds of the builder's learner on one batch of zeros held
    in memory: the tf.function trace and first call (which a learner may make while it is constructed, before it
    publishes), then the compute a learner step costs without waiting for replay."""
    sys.path.insert(0, REPO)
    import replay

    replay.import_tensorflow()  # First: TensorFlow without its CPU-only plugin noise.
    import numpy as np
    import reverb
    import tensorflow as tf

    from agents import envs

    spec = replay.make_environment_spec(envs.make_environment(env))
    data = tf.nest.map_structure(lambda s: tf.zeros((batch_size, *s.shape), s.dtype), signature)
    info = reverb.SampleInfo(
        key=tf.zeros([batch_size], tf.uint64),
        probability=tf.fill([batch_size], 0.01),
        table_size=tf.fill([batch_size], np.int64(1000)),
        priority=tf.ones([batch_size], tf.float64),
        times_sampled=tf.zeros([batch_size], tf.int32),
    )
    iterator = iter(tf.data.Dataset.from_tensors(reverb.ReplaySample(info, data)).repeat())
    networks = builder.make_networks(spec, 0)
    start = time.perf_counter()
    learner = builder.make_learner(networks, iterator)
    learner.step()
    first = time.perf_counter() - start
    start = time.perf_counter()
    learner.run(num_steps=num_steps)
    return first, (time.perf_counter() - start) / num_steps


def write_json(path: str, data: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags dqn_cartpole.py shares (seeds, budget, actors, quick, runs_dir, json)."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max_seconds", type=float, default=120.0, help="budget per run")
    parser.add_argument("--num_actors", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one seed, budget at most 60 s")
    parser.add_argument("--runs_dir", default=None, help="keep the runs' directories here (default: deleted)")
    parser.add_argument("--json", default=None, help="write the results here")


def budget(args: argparse.Namespace) -> Tuple[int, float]:
    """(seeds, max_seconds) after --quick."""
    return (1, min(args.max_seconds, 60.0)) if args.quick else (args.seeds, args.max_seconds)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so a run being waited for is killed with its process group on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: Optional[Sequence[str]] = None) -> int:
    exit_on_sigterm()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "--baseline_worker":
        baseline_worker(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", default="dqn")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument(
        "--baselines", default="sb3_dqn", help=f"comma-separated, from {','.join(BASELINES)} ('' for none)"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    seeds, max_seconds = budget(args)
    try:
        measurement = measure(
            args.agent,
            args.env,
            seeds,
            [b for b in args.baselines.split(",") if b],
            max_seconds,
            args.num_actors,
            runs_dir=args.runs_dir,
        )
    except UsageError as error:
        parser.error(str(error))
    print_table(measurement)
    if args.json:
        write_json(args.json, measurement)
        print(f"wrote {args.json}")
    return 1 if measurement["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
