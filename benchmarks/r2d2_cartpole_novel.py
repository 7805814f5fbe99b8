"""Time to solve CartPoleNoVel-v1 (CartPole without the velocities) with R2D2 (distributed), against sb3-contrib's
RecurrentPPO and Encore's feed-forward DQN on the same task, and what one actor step costs.

An alias of `benchmarks/time_to_solve.py --agent r2d2 --env CartPoleNoVel-v1 --baselines sb3_recurrent_ppo` (its
criterion and JSON come from there) for R2D2's distributed variant, plus the same measurement of DQN's distributed
variant (without recurrence it has to act on positions alone), plus the microseconds of one acting step of the
default R2D2 network in numpy (what actors use) and through a compiled tf.function.

    python benchmarks/r2d2_cartpole_novel.py [--seeds 3] [--max_seconds 200] [--num_actors 2] [--quick]
        [--runs_dir DIR] [--json PATH]

The JSON has the measurements under "r2d2" and "dqn" (time_to_solve.py's format), the medians as
r2d2_seconds / sb3_recurrent_ppo_seconds / dqn_seconds (null if half or more seeds did not solve), and
"acting_step_microseconds".
"""

import argparse
import os
import sys
import time
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

REPO = time_to_solve.REPO
ENV = "CartPoleNoVel-v1"
BASELINES = ["sb3_recurrent_ppo"]
DEFAULT_MAX_SECONDS = 200.0


def acting_step_microseconds(steps: int = 5_000) -> Dict[str, float]:
    """Median-of-5 microseconds of one actor step (Q-values and next state for one observation) of the default
    network: the numpy twin, and the TensorFlow network through a compiled tf.function."""
    sys.path.insert(0, REPO)
    import replay

    replay.import_tensorflow()
    import numpy as np
    import tensorflow as tf

    from agents import envs
    from agents.r2d2 import R2D2Builder, R2D2Config, numpy_q_step

    config = R2D2Config()
    spec = replay.make_environment_spec(envs.make_environment(ENV))
    network = R2D2Builder(config).make_networks(spec, 0)[0]
    params = network.numpy_parameters()
    observation = np.zeros(spec.observations.shape, np.float32)

    @tf.function
    def tf_step(observation, hidden, cell):
        q_values, state = network.unroll(observation[None, None], (hidden, cell))
        return q_values[0, 0], state

    def time_numpy() -> float:
        state = (np.zeros(config.lstm_size, np.float32),) * 2
        start = time.perf_counter()
        for _ in range(steps):
            q_values, state = numpy_q_step(params, observation, state, config.dueling)
            int(np.argmax(q_values))
        return (time.perf_counter() - start) / steps

    def time_tf() -> float:
        state = network.initial_state(1)
        start = time.perf_counter()
        for _ in range(steps // 5):
            q_values, state = tf_step(tf.constant(observation), *state)
            int(np.argmax(q_values.numpy()))
        return (time.perf_counter() - start) / (steps // 5)

    tf_step(tf.constant(observation), *network.initial_state(1))  # The trace, outside the timing.
    return {
        "numpy": 1e6 * float(np.median([time_numpy() for _ in range(5)])),
        "tf_function": 1e6 * float(np.median([time_tf() for _ in range(5)])),
    }


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    time_to_solve.add_arguments(parser)
    parser.set_defaults(max_seconds=DEFAULT_MAX_SECONDS)
    args = parser.parse_args()
    seeds, max_seconds = time_to_solve.budget(args)
    measurements: Dict[str, Any] = {}
    try:
        for agent, baselines in (("r2d2", BASELINES), ("dqn", [])):
            subdirectory = args.runs_dir and os.path.join(args.runs_dir, agent)
            measurements[agent] = time_to_solve.measure(
                agent,
                ENV,
                seeds,
                baselines,
                max_seconds,
                args.num_actors,
                runs_dir=subdirectory,
                variants=("distributed",),
            )
            time_to_solve.print_table(measurements[agent])
    except time_to_solve.UsageError as error:
        parser.error(str(error))
    acting = acting_step_microseconds()
    print(
        f"\nOne acting step of the default R2D2 network: numpy {acting['numpy']:.1f} us, "
        f"tf.function {acting['tf_function']:.1f} us."
    )
    if args.json:
        time_to_solve.write_json(args.json, results(measurements, acting))
        print(f"wrote {args.json}")
    return 1 if any(m["errors"] for m in measurements.values()) else 0


def _median(measurement: Dict, variant: str) -> Optional[float]:
    variants = measurement["variants"]
    return variants[variant]["median_seconds"] if variant in variants else None


def results(measurements: Dict[str, Dict], acting: Dict[str, float]) -> Dict:
    return {
        "r2d2_seconds": _median(measurements["r2d2"], "distributed"),
        **{f"{name}_seconds": _median(measurements["r2d2"], name) for name in BASELINES},
        "dqn_seconds": _median(measurements["dqn"], "distributed"),
        "acting_step_microseconds": acting,
        **measurements,
    }


if __name__ == "__main__":
    sys.exit(main())
