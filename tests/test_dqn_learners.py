"""DQN with several learners: each pushes its minibatches' gradients to one parameter server and sends priorities to
the replay table they all sample; in one process against real servers, and as programs under test_mt and local_mp."""

import json
import os

import numpy as np
import pytest
from conftest import usage_error
from test_dqn import _fill

import replay
from agents import dqn, envs, experiments, utils
from agents.experiments.distributed import counter_checkpoint_path

ENV = "CartPole-v1"
_TIMEOUT_MS = 20_000  # Sampling from a table below min_replay_size fails after this, never hangs.


def _spec():
    return replay.make_environment_spec(envs.make_environment(ENV))


def _priorities(client, table, num_samples=300):
    return [float(s.info.priority) for s in client.sample(table, num_samples=num_samples, emit_timesteps=False)]


def test_two_learners_take_turns_on_one_server_and_send_priorities():
    config = dqn.DQNConfig(min_replay_size=100, batch_size=32, num_sgd_steps_per_step=2, target_update_period=3)
    builder = dqn.DQNBuilder(config.replace(num_learners=2))
    spec = _spec()
    with replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False)) as server:
        client = server.client()
        _fill(server, builder)
        parameter_server = builder.make_parameter_server(spec, seed=0)
        initial = parameter_server.get()[1]
        networks = [builder.make_networks(spec, seed=i + 1) for i in range(2)]  # Replaced by the server's.
        counter = utils.Counter()
        with replay.PriorityUpdater(client, config.replay_table_name) as updater:
            learners = [
                builder.make_gradient_learner(
                    networks[i],
                    builder.make_dataset_iterator(server.address, _TIMEOUT_MS),
                    parameter_server,
                    priority_updater=updater,
                    counter=utils.Counter(counter, "learner", time_delta=0.0),
                )
                for i in range(2)
            ]
            for _ in range(3):
                for learner in learners:
                    learner.step()
            updater.flush(timeout=30)
        priorities = _priorities(client, config.replay_table_name)

    # 3 steps x 2 learners x 2 minibatches: 12 pushes, each one update of the shared parameters (asynchronous).
    stats = parameter_server.stats()
    assert (stats["pushes"], stats["updates"], stats["version"]) == (12, 12, 12)
    assert [learner.num_steps for learner in learners] == [6, 6]
    assert counter.get_counts()["learner_steps"] == 12  # Summed over the learners.
    # Each learner's first push of a step was computed on the parameters it adopted before the other learner's two
    # pushes (2 updates stale), its second on those its first push returned; learner 0's very first step had none
    # before it, learner 1's first step adopted them.
    assert stats["staleness_histogram"] == {"0": 8, "2": 4}
    assert (learners[0].version, learners[1].version) == (10, 12)
    newest = parameter_server.get()[1]
    assert any(not np.array_equal(a, b) for a, b in zip(initial, newest))
    for a, b in zip(networks[1][0].numpy_parameters(), newest):
        np.testing.assert_array_equal(a, b)  # The last pusher holds what its push returned.
    # Target networks copy the server's parameters when the version passes a multiple of target_update_period=3:
    # learner 1 adopted 11 and 12 (copied at both), learner 0 adopted 9 (copied) and then 10 (not).
    for a, b in zip(networks[1][1].numpy_parameters(), newest):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(networks[0][1].numpy_parameters(), networks[0][0].numpy_parameters())
    )
    # Priorities reached the table: |TD errors| replaced the adder's 1.0 on the sampled items.
    assert any(p != 1.0 for p in priorities)


# Small enough to run in seconds; the rate limiter holds the actors to the learners' pace, so the actor-step budget
# ends the run only after the learners sampled.
_RUN_CONFIG = dict(
    num_learners=2,
    min_replay_size=200,
    samples_per_insert=4.0,
    samples_per_insert_tolerance=0.5,
    variable_update_period=20,
)


def _checkpointed_items(replay_dir):
    """The items of the latest replay checkpoint in `replay_dir`, read from its files (Reverb's PrioritizedItem
    records): a server restored from it could not sample them, because it restores the rate limiter's counts too,
    which the run left blocking samples."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from reverb.cc import schema_pb2  # pylint: disable=import-outside-toplevel

    latest = max(path for path in os.listdir(replay_dir) if os.path.exists(os.path.join(replay_dir, path, "DONE")))
    records = tf.data.TFRecordDataset(os.path.join(replay_dir, latest, "items.tfrecord"), compression_type="ZLIB")
    return [schema_pb2.PrioritizedItem.FromString(record.numpy()) for record in records]


@pytest.mark.parametrize(
    "launch_type, synchronous", [("test_mt", False), ("local_mp", True)], ids=["test_mt-async", "local_mp-sync"]
)
def test_two_learners_push_to_a_parameter_server_in_a_distributed_run(tmp_path, launch_type, synchronous):
    builder = dqn.DQNBuilder(dqn.DQNConfig(**_RUN_CONFIG, synchronous_learners=synchronous))
    experiment = experiments.ExperimentConfig(
        builder=builder,
        run_dir=str(tmp_path),
        env_name=ENV,
        eval_episodes=2,
        max_actor_steps=2_000,
        stop_when_solved=False,  # A lucky early evaluation (500 at 1,420 steps, seen once) would end it short.
    )
    result = experiments.run_experiment(experiment, num_actors=2, launch_type=launch_type)
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= 2_000, result

    server = result["parameter_server"]
    assert server["version"] == server["updates"] > 0, server  # The version advances by the applied updates.
    if synchronous:  # One update per round of a push from each learner (a round cut short at the stop has one).
        assert server["group_size"] == 2, server
        assert server["updates"] <= server["pushes"] - server["waiting"] <= 2 * server["updates"], server
    else:
        assert server["pushes"] == server["updates"] == sum(server["staleness_histogram"].values()), server
    # Both learners pushed and adopted the server's parameters (their logs run on past the result's server stats,
    # taken as the evaluator ended the run; the in-process test above checks the exact sums).
    for learner_id in range(2):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"learner_{learner_id}.csv"))
        assert max(log["learner_steps"]) > 0 and max(log["parameter_version"]) > 0, f"learner {learner_id}"
    assert 0 < result["learner_steps"] <= server["pushes"], (result, server)  # Counted: the learners' pushes.
    # Actors and the evaluator read the server's parameters.
    assert 0 < result["parameter_version"] <= server["version"]
    for actor_id in range(2):
        log = utils.read_csv_log(os.path.join(tmp_path, "logs", f"actor_{actor_id}.csv"))
        assert max(log["parameter_version"]) > 0, f"actor {actor_id} never received the server's parameters"
    assert utils.read_csv_log(os.path.join(tmp_path, "logs", "parameter_server.csv"))["pushes"]
    program = utils.read_json(os.path.join(tmp_path, "program.json"))
    labels = sorted(f"{node['label']}/{node['index']}" for node in program["nodes"])
    assert {"parameter_server/0", "learner/0", "learner/1"} <= set(labels) and "variable_server/0" not in labels

    # Priorities reached the table: in the replay checkpoint written at the stop, the items sampled hold |TD errors|
    # in place of the adder's 1.0.
    items = _checkpointed_items(os.path.join(tmp_path, "replay"))
    sampled = [item for item in items if item.times_sampled > 0]
    assert sampled and any(item.priority != 1.0 for item in sampled), (len(items), len(sampled))


def test_settings_several_learners_cannot_run_are_refused(capsys, tmp_path):
    with pytest.raises(ValueError, match="synchronous_learners=true needs num_learners > 1"):
        dqn.DQNConfig(synchronous_learners=True)
    with pytest.raises(ValueError, match=r"num_learners must be >= 1 \(got 0\)"):
        dqn.DQNConfig(num_learners=0)
    message = usage_error(capsys, ["--config", "num_learners=2", "--single_process"])
    assert "num_learners=2: several learners push gradients" in message and "drop --single_process" in message

    # A run directory of a run with two learners: --resume is refused up front...
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    (run_dir / "config.json").write_text(json.dumps({"agent": "dqn", "config": {"num_learners": 2}}))
    message = usage_error(capsys, ["--resume", str(run_dir)])
    assert "keeps no checkpoint of its parameter server" in message and "start a new run" in message
    # ... and so is a program made for it through the experiment layer.
    experiment = experiments.ExperimentConfig(dqn.DQNBuilder(dqn.DQNConfig(num_learners=2)), run_dir=str(run_dir))
    os.makedirs(os.path.dirname(counter_checkpoint_path(str(run_dir))))
    utils.write_json(counter_checkpoint_path(str(run_dir)), {})
    with pytest.raises(ValueError, match="the run directory holds an earlier run"):
        experiments.make_distributed_program(experiment, num_actors=1)
