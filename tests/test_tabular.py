"""agents.tabular: the exact oracle, single / partitioned / averaged Q-learning against it, the row-wise merge,
partition errors, the launch program on every local launch type, and the research script's run directory."""

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import usage_error, wait_until

from agents import experiments, run, utils
from agents.tabular import (
    Coordinator,
    Partition,
    QLearningWorker,
    TabularBuilder,
    TabularConfig,
    greedy_policy,
    is_optimal,
    make_model,
    make_partition,
    policy_returns,
    start_return,
    value_iteration,
)
from agents.tabular.model import backup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_single_process(tmp_path, env_name="Taxi-v4", max_actor_steps=None, stop_when_solved=True, **config):
    experiment = experiments.ExperimentConfig(
        builder=TabularBuilder(TabularConfig(**config)),
        run_dir=utils.make_run_dir(str(tmp_path / "run")),
        env_name=env_name,
        max_actor_steps=max_actor_steps,
        max_seconds=240,
        stop_when_solved=stop_when_solved,
    )
    result = experiment.builder.run_single_process(experiment, print_fn=lambda line: None)
    return result, np.load(os.path.join(experiment.run_dir, "q_table.npy"))


def test_value_iteration_matches_known_values():
    taxi = make_model("Taxi-v4")
    solution = value_iteration(taxi, 0.99)
    assert taxi.start_states.size == 300
    assert start_return(taxi, solution.returns) == pytest.approx(7.93, abs=1e-6)
    np.testing.assert_allclose(backup(taxi, solution.values, 0.99), solution.q, atol=1e-9)  # Bellman's fixed point.
    assert is_optimal(taxi, solution, solution.policy)

    lake = make_model("FrozenLake-v1")  # 4x4, slippery.
    lake_solution = value_iteration(lake, 0.99)
    assert start_return(lake, lake_solution.returns) == pytest.approx(0.74, abs=0.005)
    assert lake.time_limit == 100 and set(lake.absorbing_states.tolist()) == {5, 7, 11, 12, 15}  # Holes and goal.


def test_policy_returns_and_optimality_see_a_bad_policy():
    taxi = make_model("Taxi-v4")
    solution = value_iteration(taxi, 0.99)
    always_south = np.zeros(taxi.num_states, np.int64)
    returns = policy_returns(taxi, always_south)
    np.testing.assert_allclose(returns, -200.0)  # Never delivers: -1 for each of the 200 steps.
    assert not is_optimal(taxi, solution, always_south)
    one_wrong = solution.policy.copy()
    start = taxi.start_states[0]
    one_wrong[start] = np.argmin(solution.q[start])
    assert not is_optimal(taxi, solution, one_wrong)


def test_taxi_single_reaches_an_exactly_optimal_policy(tmp_path):
    result, table = _run_single_process(tmp_path, max_actor_steps=1_000_000)
    assert result["optimal"] and result["stopped_by"] == "solved"
    assert result["steps"] <= 1_000_000
    assert result["eval_return"] == pytest.approx(7.93)
    taxi = make_model("Taxi-v4")
    assert is_optimal(taxi, value_iteration(taxi, 0.99), greedy_policy(table))


def test_taxi_partitioned_five_workers_reach_an_exactly_optimal_policy(tmp_path):
    result, table = _run_single_process(tmp_path, max_actor_steps=500_000, mode="partitioned", num_workers=5)
    assert result["optimal"] and result["steps"] <= 500_000
    taxi = make_model("Taxi-v4")
    assert is_optimal(taxi, value_iteration(taxi, 0.99), greedy_policy(table))


@pytest.mark.parametrize("env_name", ["CliffWalking-v1", "FrozenLake-v1"])
def test_the_small_environments_reach_their_optimum_too(tmp_path, env_name):
    result, table = _run_single_process(tmp_path, env_name, max_actor_steps=200_000)
    model = make_model(env_name)
    solution = value_iteration(model, 0.99)
    assert result["optimal"] and is_optimal(model, solution, greedy_policy(table))
    assert result["eval_return"] == pytest.approx(start_return(model, solution.returns))


def test_frozen_lake_8x8_learns_q_star_within_a_bound(tmp_path):
    result, table = _run_single_process(
        tmp_path,
        "FrozenLake8x8-v1",
        max_actor_steps=400_000,
        mode="partitioned",
        num_workers=4,
        stop_when_solved=False,
    )
    lake = make_model("FrozenLake8x8-v1")
    assert not lake.deterministic  # So the step sizes decay (1 / sqrt(n)): a slippery lake's targets are noisy.
    error = np.abs(table - value_iteration(lake, 0.99).q)
    assert result["max_q_error"] == pytest.approx(error.max())
    assert error.max() < 0.2 and error.mean() < 0.05, (error.max(), error.mean())


def test_partitioned_with_one_worker_is_single(tmp_path):
    single, single_table = _run_single_process(tmp_path / "a", max_actor_steps=20_000, stop_when_solved=False)
    one, one_table = _run_single_process(
        tmp_path / "b", max_actor_steps=20_000, stop_when_solved=False, mode="partitioned", num_workers=1
    )
    assert single["actor_steps"] == one["actor_steps"] == 20_000
    np.testing.assert_array_equal(single_table, one_table)
    assert np.abs(single_table).sum() > 0


def test_several_workers_explore_more_unless_epsilon_is_set(tmp_path):
    assert TabularConfig().exploration_rate == 0.2
    assert TabularConfig(mode="partitioned", num_workers=1).exploration_rate == 0.2  # So K = 1 stays single.
    assert TabularConfig(mode="averaged", num_workers=5).exploration_rate == 0.7
    assert TabularConfig(mode="partitioned", num_workers=5).exploration_rate == 0.7
    assert TabularConfig(mode="partitioned", num_workers=5, epsilon=0.0).exploration_rate == 0.0
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\], or negative for the automatic choice"):
        TabularConfig(epsilon=1.5)
    tables = {}
    for epsilon in (-1.0, 0.7, 0.2):
        _, tables[epsilon] = _run_single_process(
            tmp_path / str(epsilon),
            max_actor_steps=5000,
            stop_when_solved=False,
            mode="partitioned",
            num_workers=2,
            epsilon=epsilon,
        )
    np.testing.assert_array_equal(tables[-1.0], tables[0.7])  # The workers act with the automatic value.
    assert not np.array_equal(tables[0.7], tables[0.2])


def test_deterministic_single_process_runs_repeat_and_distributed_ones_are_refused(capsys, tmp_path):
    argv = ["--agent", "tabular", "--env", "Taxi-v4", "--config", "mode=partitioned", "--config", "num_workers=3"]
    argv += ["--single_process", "--deterministic", "--max_actor_steps", "9000", "--stop_when_solved", "false"]
    tables = []
    for name in ("a", "b"):
        result = run.main([*argv, "--run_dir", str(tmp_path / name)])
        assert result["actor_steps"] == 9000
        tables.append(np.load(tmp_path / name / "q_table.npy"))
    np.testing.assert_array_equal(*tables)
    refused = [arg for arg in argv if arg != "--single_process"]
    assert "--deterministic needs --single_process" in usage_error(capsys, refused)


def test_the_merge_is_a_row_wise_union_and_no_worker_changes_another_block():
    model = make_model("Taxi-v4")
    config = TabularConfig(mode="partitioned", num_workers=3, partition="contiguous", merge_period=500)
    partition = make_partition("contiguous", "Taxi-v4", model.num_states, 3)
    coordinator = Coordinator("partitioned", partition, model.num_actions, config.num_workers)
    workers = [
        QLearningWorker(__import__("gymnasium").make("Taxi-v4"), model, partition.blocks[k], config, seed=k)
        for k in range(3)
    ]
    for _ in range(4):
        before = [worker.q.copy() for worker in workers]
        for k, worker in enumerate(workers):
            worker.run(config.merge_period)
            others = partition.owner != k
            np.testing.assert_array_equal(worker.q[others], before[k][others])  # Only its own rows moved.
            assert not np.array_equal(worker.q[~others], before[k][~others])
        merged = [coordinator.exchange(k, worker.own_rows(), config.merge_period) for k, worker in enumerate(workers)]
        for k, worker in enumerate(workers):
            # Each exchange replaced exactly its sender's rows: the union of the blocks, nothing averaged.
            np.testing.assert_array_equal(merged[k][partition.blocks[k]], worker.q[partition.blocks[k]])
            worker.adopt(merged[-1])
    final = coordinator.latest()[2]
    for k, worker in enumerate(workers):
        np.testing.assert_array_equal(final[partition.blocks[k]], worker.own_rows())
    with pytest.raises(ValueError, match="worker 1 sent rows of shape"):
        coordinator.exchange(1, np.zeros((3, 6)), 1)


def test_a_worker_ahead_of_the_slowest_by_more_than_max_lead_waits_for_it():
    partition = make_partition("contiguous", "Taxi-v4", 500, 2)
    coordinator = Coordinator("partitioned", partition, 6, num_workers=2)
    rows = [np.full((block.size, 6), float(k + 1)) for k, block in enumerate(partition.blocks)]
    for _ in range(2):
        coordinator.exchange(0, rows[0], 10)
    # Worker 0 is 2 exchanges ahead of worker 1: within a lead of 2 it goes on, within 1 it waits for worker 1.
    assert coordinator.wait_for_slowest(0, max_lead=2, timeout=60).sum() == rows[0].sum()
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(coordinator.wait_for_slowest(0, max_lead=1, timeout=60)))
    waiter.start()
    wait_until(lambda: coordinator._changed._waiters, "worker 0 to wait")  # pylint: disable=protected-access
    assert not waited
    coordinator.exchange(1, rows[1], 10)
    waiter.join(60)
    # It takes back the table merged with worker 1's rows.
    assert waited[0].sum() == rows[0].sum() + rows[1].sum()
    # Past its timeout a wait ends anyway (a worker being restarted holds the others up for that long at most).
    coordinator.exchange(0, rows[0], 10)
    coordinator.exchange(0, rows[0], 10)
    assert coordinator.wait_for_slowest(0, max_lead=0, timeout=0.01).sum() == waited[0].sum()
    coordinator.end_waits()  # The program stops: no wait any more.
    assert coordinator.wait_for_slowest(0, max_lead=0, timeout=60).sum() == waited[0].sum()


def test_states_outside_every_block_or_in_two_are_refused():
    with pytest.raises(ValueError, match=r"blocks 0 and 1 overlap \(state 2 is in both\)"):
        Partition([[0, 1, 2], [2, 3]], num_states=4)
    with pytest.raises(ValueError, match=r"state 3 is in no block"):
        Partition([[0, 1], [2]], num_states=4)
    with pytest.raises(ValueError, match=r"puts state 4 in block 2, outside the blocks 0..1"):
        Partition.from_function(lambda s: s // 2, num_states=5, num_blocks=2)
    with pytest.raises(ValueError, match="partition=taxi_rows is for Taxi"):
        make_partition("taxi_rows", "FrozenLake-v1", 16, 2)
    taxi_rows = make_partition("auto", "Taxi-v4", 500, 5)
    assert [block.tolist() for block in taxi_rows.blocks] == [list(range(100 * r, 100 * (r + 1))) for r in range(5)]


def test_averaged_workers_share_one_averaged_table(tmp_path):
    result, table = _run_single_process(
        tmp_path, max_actor_steps=30_000, mode="averaged", num_workers=3, stop_when_solved=False
    )
    assert result["actor_steps"] == 30_000 and result["merges"] == 30
    assert np.abs(table).sum() > 0 and not result["optimal"]


def test_the_research_script_refuses_what_tabular_cannot_do(capsys, tmp_path):
    base = ["--agent", "tabular", "--run_dir", str(tmp_path / "run")]
    assert "has no transition table" in usage_error(capsys, [*base, "--env", "CartPole-v1"])
    assert "mode=single has one worker" in usage_error(capsys, [*base, "--env", "Taxi-v4", "--config", "num_workers=5"])
    assert "takes its node count from its config" in usage_error(
        capsys, [*base, "--env", "Taxi-v4", "--num_actors", "3"]
    )
    overlap = ["--env", "FrozenLake-v1", "--config", "mode=partitioned", "--config", "partition=taxi_rows"]
    assert "partition=taxi_rows is for Taxi" in usage_error(capsys, [*base, *overlap])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text('{"agent": "tabular"}')
    assert "keep no checkpoints" in usage_error(capsys, ["--agent", "tabular", "--resume", str(tmp_path / "old")])
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("launch_type", ["test_mt", "local_mt", "local_mp"])
def test_the_program_runs_on_every_launch_type(tmp_path, launch_type):
    run_dir = str(tmp_path / "run")
    argv = ["--agent", "tabular", "--env", "Taxi-v4", "--launch_type", launch_type, "--run_dir", run_dir]
    argv += ["--config", "mode=partitioned", "--config", "num_workers=2", "--config", "merge_period=500"]
    result = run.main([*argv, "--max_actor_steps", "10000", "--stop_when_solved", "false"])
    assert result["stopped_by"] == "budget" and result["actor_steps"] >= 10_000 and result["merges"] >= 20
    saved = utils.read_json(os.path.join(run_dir, "result.json"))
    assert saved["actor_steps"] == result["actor_steps"] and saved["startup_seconds"] > 0
    table = np.load(os.path.join(run_dir, "q_table.npy"))
    assert table.shape == (500, 6) and np.abs(table).sum() > 0
    curve = utils.read_csv_log(os.path.join(run_dir, "logs", "evaluator.csv"))
    assert curve["actor_steps"][-1] == result["actor_steps"] and len(curve["eval_return"]) >= 2
    assert os.path.isfile(os.path.join(run_dir, "learning_curve.png"))
    nodes = utils.read_json(os.path.join(run_dir, "program.json"))["nodes"]
    assert sorted(node["label"] for node in nodes) == ["coordinator", "worker", "worker"]


def test_the_distributed_program_reaches_the_optimum_and_says_when(tmp_path):
    run_dir = str(tmp_path / "run")
    argv = ["--agent", "tabular", "--env", "Taxi-v4", "--launch_type", "local_mp", "--run_dir", run_dir]
    result = run.main([*argv, "--config", "mode=partitioned", "--config", "num_workers=5", "--max_seconds", "240"])
    assert result["optimal"] and result["stopped_by"] == "solved"
    assert 0 < result["steps"] <= result["actor_steps"] and 0 < result["seconds"] <= result["wall_seconds"]
    taxi = make_model("Taxi-v4")
    table = np.load(os.path.join(run_dir, "q_table.npy"))
    assert is_optimal(taxi, value_iteration(taxi, 0.99), greedy_policy(table))


_NO_TENSORFLOW = """
import sys
from agents import run
result = run.main(sys.argv[1:])
assert result["actor_steps"] >= 5000, result
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "reverb"))
assert not loaded, loaded
print("no tensorflow")
"""


def test_tabular_nodes_never_import_tensorflow(tmp_path):
    # local_mt: the coordinator and workers run as threads of this one process, whose modules are then checked.
    argv = ["--agent", "tabular", "--env", "FrozenLake-v1", "--launch_type", "local_mt", "--max_actor_steps", "5000"]
    argv += ["--config", "mode=averaged", "--config", "num_workers=2", "--stop_when_solved", "false"]
    completed = subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW, *argv, "--run_dir", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0 and "no tensorflow" in completed.stdout, completed.stdout + completed.stderr


@pytest.mark.parametrize("where", [["--single_process"], ["--launch_type", "local_mp"]])
def test_ctrl_c_ends_a_run_with_its_result_and_table(tmp_path, where):
    run_dir = str(tmp_path / "run")
    argv = ["--agent", "tabular", "--env", "Taxi-v4", "--run_dir", run_dir, "--max_seconds", "200", *where]
    argv += ["--config", "mode=partitioned", "--config", "num_workers=2", "--stop_when_solved", "false"]
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.run", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C in a terminal reaches the launcher alone, as here.
    )
    try:
        curve = os.path.join(run_dir, "logs", "evaluator.csv")
        wait_until(
            lambda: (
                process.poll() is not None
                or (os.path.exists(curve) and len(utils.read_csv_log(curve).get("actor_steps", [])) >= 3)
            ),
            "three judged tables",
            timeout=120,
        )
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGINT, output[-3000:]
    result = utils.read_json(os.path.join(run_dir, "result.json"))
    assert result["stopped_by"] == "user" and result["actor_steps"] > 0
    assert np.load(os.path.join(run_dir, "q_table.npy")).shape == (500, 6)
