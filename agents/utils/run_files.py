"""The files of a run directory (config, result, program) and the terminal progress line."""

import dataclasses
import datetime
import json
import os
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple


def make_run_dir(run_dir: Optional[str] = None, base: str = "runs") -> str:
    """Creates and returns `run_dir`, defaulting to base/<timestamp>."""
    if run_dir is None:
        run_dir = os.path.join(base, datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    return run_dir


def write_json(path: str, data: Any) -> str:
    """Writes `data` (dataclasses allowed) as indented JSON, atomically; returns the path."""
    if dataclasses.is_dataclass(data):
        data = dataclasses.asdict(data)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    os.replace(temporary, path)
    return path


def write_program_json(
    run_dir: str,
    name: str,
    launch_type: str,
    replay_address: Optional[str],
    nodes: Sequence[Tuple[str, int, Optional[str], Optional[int]]],
    **extra: Any,
) -> str:
    """Writes run_dir/program.json: the replay address (read by `encore-inspect RUN_DIR`; None for a program
    without replay; the first shard's when `extra` has `replay_shards`, every shard's) and every
    node as {label, index, address, pid} (pid: the process running it now, to find and signal one node; null
    until it has started)."""
    return write_json(
        os.path.join(run_dir, "program.json"),
        {
            "name": name,
            "launch_type": launch_type,
            "replay_address": replay_address,
            "nodes": [
                {"label": label, "index": index, "address": address, "pid": pid} for label, index, address, pid in nodes
            ],
            **extra,
        },
    )


def replay_address(run_dir: str) -> str:
    """The replay server's host:port that `run_dir`/program.json records (written by `write_program_json`).

    Raises ValueError naming the problem when there is no such file, it is not readable JSON, or it records no
    `replay_address`.
    """
    path = os.path.join(run_dir, "program.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"run directory {run_dir} has no program.json, so it records no replay address: pass the "
            "replay server's host:port instead"
        )
    try:
        program = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} ({e}): pass the replay server's host:port instead") from None
    address = program.get("replay_address") if isinstance(program, dict) else None
    if not address:
        raise ValueError(
            f"{path} records no replay_address (the program that wrote it runs no replay server): "
            "pass the replay server's host:port instead"
        )
    return str(address)


def replay_addresses(run_dir: str) -> List[str]:
    """Every replay shard's host:port that `run_dir`/program.json records (`replay_shards`, written by programs with
    several), or its one `replay_address`; ValueError as `replay_address`."""
    address = replay_address(run_dir)
    shards = read_json(os.path.join(run_dir, "program.json")).get("replay_shards")
    return [str(shard) for shard in shards] if shards else [address]


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class ProgressLine:
    """Prints one status line: elapsed time, actor and learner steps with rates, replay size, eval."""

    def __init__(self, start_time: float, print_fn: Callable[[str], None] = print):
        self._start_time = start_time
        self._print_fn = print_fn
        self._last = (time.time(), 0, 0)

    def show(
        self,
        actor_steps: int,
        learner_steps: int,
        replay_size: Optional[int],
        eval_return: Optional[float],
        eval_actor_steps: Optional[int] = None,
    ) -> None:
        """`eval_return`: the latest evaluation's mean, made at `eval_actor_steps`."""
        now = time.time()
        then, last_actor, last_learner = self._last
        span = now - then
        self._last = (now, actor_steps, learner_steps)
        # Counts arrive in bursts, so a rate over less than a second says little.
        rate = lambda steps: f"{steps / span:,.0f}/s" if span >= 1.0 else "-/s"  # noqa: E731
        size = "-" if replay_size is None else f"{replay_size:,}"
        evaluation = "-" if eval_return is None else f"{eval_return:.1f}"
        if eval_return is not None and eval_actor_steps is not None:
            evaluation += f" (at {eval_actor_steps:,} steps)"
        self._print_fn(
            f"[{now - self._start_time:6.1f}s] actor {actor_steps:,} steps ({rate(actor_steps - last_actor)}) | "
            f"learner {learner_steps:,} steps ({rate(learner_steps - last_learner)}) | replay {size} | "
            f"eval {evaluation}"
        )
