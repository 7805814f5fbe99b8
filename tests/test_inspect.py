"""`python -m replay.inspect` against real Reverb servers: every subcommand, text and JSON, and each error; and
`encore-inspect` (`python -m agents.inspect`), which also takes a run directory."""

import json
import os
import pty
import select
import subprocess
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import portpicker  # noqa: E402
import pytest  # noqa: E402
import reverb  # noqa: E402
import tensorflow as tf  # noqa: E402
from conftest import wait_until  # noqa: E402

import agents.inspect  # noqa: E402
import replay  # noqa: E402
from replay._inspect import top  # noqa: E402
from replay.inspect import main  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNATURE = {"obs": tf.TensorSpec([4], tf.float32), "act": tf.TensorSpec([], tf.int32)}
NESTED_SIGNATURE = {
    "a": {"b": tf.TensorSpec([None, 2], tf.uint8)},
    "c": [tf.TensorSpec([], tf.float64), tf.TensorSpec([5], tf.bool)],
}


def _write(client, table, priorities):
    """Item i holds obs = [i]*4, act = i, with priority priorities[i]."""
    with client.trajectory_writer(num_keep_alive_refs=1) as writer:
        for i, priority in enumerate(priorities):
            writer.append({"obs": np.full(4, i, np.float32), "act": np.int32(i)})
            writer.create_item(table, priority, {"obs": writer.history["obs"][-1], "act": writer.history["act"][-1]})


@pytest.fixture
def server():
    """prio: 7 items; full: inserts blocked; starved: samples blocked; queue: 3 items; nested: empty."""
    tables = [
        replay.tables.prioritized("prio", 100, priority_exponent=0.6, signature=SIGNATURE),
        # error buffer 5 * 1.0 * 2 = 10 -> min_diff 0, max_diff 20: the 11th insert would block.
        replay.tables.uniform("full", 100, samples_per_insert=2, min_size=5, tolerance=1.0, signature=SIGNATURE),
        replay.tables.uniform("starved", 100, samples_per_insert=2, min_size=5, tolerance=1.0, signature=SIGNATURE),
        replay.tables.queue("queue", 10, signature=SIGNATURE),
        reverb.Table(
            "nested",
            reverb.selectors.MaxHeap(),
            reverb.selectors.Lifo(),
            5,
            reverb.rate_limiters.MinSize(2),
            max_times_sampled=3,
            signature=NESTED_SIGNATURE,
        ),
    ]
    with replay.ReplayServer(tables) as srv:
        client = srv.client()
        _write(client, "prio", [float(i + 1) for i in range(7)])
        _write(client, "full", [1.0] * 10)
        _write(client, "starved", [1.0] * 3)
        _write(client, "queue", [1.0] * 3)
        yield srv


def _run(capsys, *argv, cli=main):
    code = cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _cli(*argv, module="replay.inspect", timeout=60):
    return subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _error_line(stderr):
    """Our one error line (TensorFlow may print its own start-up lines before it)."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("encore-inspect: error: "), stderr
    return lines[-1]


def test_info_text_shows_every_table(server, capsys):
    code, out, _ = _run(capsys, "info", server.address)
    assert code == 0
    assert out.startswith(f"Reverb server {server.address}: 5 table(s)\n")
    prio = next(b for b in out.split("\n\n") if "table prio" in b)
    assert "  size               7 / 100\n" in prio
    assert "  sampler            prioritized (priority_exponent 0.6)\n" in prio
    assert "  remover            fifo\n" in prio
    assert "  max_times_sampled  unlimited\n" in prio
    assert "  rate limiter       samples_per_insert 1, min_size_to_sample 1, min_diff -inf, max_diff inf\n" in prio
    assert "  inserts / samples  7 / 0\n" in prio
    assert "  blocked now        no\n" in prio
    assert "  episodes           1 (0 deleted)\n" in prio  # One writer, one episode.
    assert prio.rstrip().endswith("  signature\n    act: int32[]\n    obs: float32[4]")
    full = next(b for b in out.split("\n\n") if "table full" in b)
    assert "rate limiter       samples_per_insert 2, min_size_to_sample 5, min_diff 0, max_diff 20" in full
    assert "  blocked now        inserts (waiting for samples: one more insert would lift " in full
    assert "22 > max_diff 20" in full
    starved = next(b for b in out.split("\n\n") if "table starved" in b)
    assert "  blocked now        samples (waiting for inserts: size 3 < min_size_to_sample 5)" in starved
    nested = next(b for b in out.split("\n\n") if "table nested" in b)
    assert "  sampler            max_heap\n  remover            lifo\n  max_times_sampled  3\n" in nested
    assert nested.rstrip().endswith(
        "  signature\n    a:\n      b: uint8[None, 2]\n    c:\n      0: float64[]\n      1: bool[5]"
    )


def test_info_json_has_exact_fields(server, capsys):
    code, out, _ = _run(capsys, "info", server.address, "--json")
    assert code == 0
    tables = {t["name"]: t for t in json.loads(out)["tables"]}
    assert sorted(tables) == ["full", "nested", "prio", "queue", "starved"]
    assert tables["prio"] == {
        "name": "prio",
        "current_size": 7,
        "max_size": 100,
        "sampler": {"kind": "prioritized", "priority_exponent": pytest.approx(0.6)},
        "remover": {"kind": "fifo"},
        "max_times_sampled": 0,
        "rate_limiter": {
            "samples_per_insert": 1.0,
            "min_size_to_sample": 1,
            "min_diff": -sys.float_info.max,
            "max_diff": sys.float_info.max,
        },
        "inserts": 7,
        "samples": 0,
        "inserts_blocked": False,
        "samples_blocked": False,
        "num_episodes": 1,
        "num_deleted_episodes": 0,
        "num_unique_samples": 0,
        "signature": {"act": {"shape": [], "dtype": "int32"}, "obs": {"shape": [4], "dtype": "float32"}},
    }
    assert (tables["full"]["current_size"], tables["full"]["inserts_blocked"], tables["full"]["samples_blocked"]) == (
        10,
        True,
        False,
    )
    assert tables["full"]["rate_limiter"] == {
        "samples_per_insert": 2.0,
        "min_size_to_sample": 5,
        "min_diff": 0.0,
        "max_diff": 20.0,
    }
    assert (
        tables["starved"]["current_size"],
        tables["starved"]["inserts_blocked"],
        tables["starved"]["samples_blocked"],
    ) == (3, False, True)
    assert tables["queue"]["current_size"] == 3 and tables["queue"]["max_times_sampled"] == 1
    assert tables["nested"]["current_size"] == 0 and tables["nested"]["samples_blocked"] is True
    assert tables["nested"]["signature"] == {
        "a": {"b": {"shape": [None, 2], "dtype": "uint8"}},
        "c": [{"shape": [], "dtype": "float64"}, {"shape": [5], "dtype": "bool"}],
    }


def test_sample_text_json_and_npz(server, capsys, tmp_path):
    code, out, _ = _run(capsys, "sample", server.address, "prio", "-n", "3")
    assert code == 0
    assert out.count("item ") == 3 and "(table size 7)" in out
    assert "  act  int32[]  " in out and "  obs  float32[4]  [" in out
    for block in out.split("item ")[1:]:  # Item i holds priority i + 1, obs [i]*4 and act i.
        i = int(block.split("priority ")[1].split()[0]) - 1
        assert f"  act  int32[]  {i}\n" in block and f"  obs  float32[4]  [{i}., {i}., {i}., {i}.]" in block

    out_file = str(tmp_path / "items.npz")
    code, out, err = _run(capsys, "sample", server.address, "prio", "-n", "5", "--json", "--out", out_file)
    assert code == 0 and f"saved 5 item(s) to {out_file}" in err
    items = json.loads(out)["items"]
    assert len(items) == 5
    for item in items:
        i = item["data"]["act"]["values"][0]
        assert item["priority"] == i + 1  # Written as priority i + 1 with obs [i]*4 and act i.
        assert item["data"]["obs"] == {
            "shape": [4],
            "dtype": "float32",
            "min": i,
            "max": i,
            "mean": i,
            "values": [i] * 4,
        }
        assert item["table_size"] == 7 and item["times_sampled"] >= 1 and 0 < item["probability"] <= 1
    saved = np.load(out_file)
    assert sorted(saved.files) == [
        "data/act",
        "data/obs",
        "key",
        "priority",
        "probability",
        "table_size",
        "times_sampled",
    ]
    assert saved["data/obs"].shape == (5, 4) and saved["data/act"].shape == (5,)
    np.testing.assert_array_equal(saved["priority"], saved["data/act"] + 1)
    assert [int(k) for k in saved["key"]] == [item["key"] for item in items]


def test_sample_from_queue_needs_yes(server, capsys):
    code, _, err = _run(capsys, "sample", server.address, "queue", "-n", "2")
    assert code == 1 and "once it is sampled (max_times_sampled=1, a queue)" in err and "pass --yes" in err
    assert server.client().server_info()["queue"].current_size == 3  # Nothing was taken.
    code, out, _ = _run(capsys, "sample", server.address, "queue", "-n", "2", "--yes")
    assert code == 0 and out.count("item ") == 2
    assert server.client().server_info()["queue"].current_size == 1
    code, _, err = _run(capsys, "sample", server.address, "nested")
    assert code == 1 and "deletes each item after 3 samples (max_times_sampled=3)" in err and "pass --yes" in err


def test_sample_refuses_when_rate_limiter_would_block(server, capsys):
    code, _, err = _run(capsys, "sample", server.address, "starved")
    assert code == 1
    assert "samples from starved are blocked right now (waiting for inserts: size 3 < min_size_to_sample 5)" in err
    # full: 10 inserts * 2 - 0 samples - min_diff 0 = 20 samples may proceed.
    code, _, err = _run(capsys, "sample", server.address, "full", "-n", "21")
    assert code == 1 and "lets only 20 more sample(s)" in err
    assert server.client().server_info()["full"].rate_limiter_info.sample_stats.completed == 0


def test_sample_wait_takes_turns_with_writers(server, capsys):
    # full allows 20 samples; the writer's 2 inserts wait for those samples, then allow 4 more.
    writer = threading.Thread(target=_write, args=(server.client(), "full", [1.0] * 2))
    writer.start()
    code, out, _ = _run(capsys, "sample", server.address, "full", "-n", "24", "--wait", "--timeout", "10")
    writer.join(timeout=10)
    assert not writer.is_alive(), "the writer's inserts were never let through"
    assert code == 0 and out.count("item ") == 24
    info = server.client().server_info()["full"]
    assert (info.current_size, info.rate_limiter_info.sample_stats.completed) == (12, 24)


def test_sample_wait_gives_up_when_stalled(server, capsys):
    code, _, err = _run(capsys, "sample", server.address, "starved", "--wait", "--timeout", "1")
    assert code == 1 and "sampling starved at" in err and "stalled for 1s after 0 of 1 item(s)" in err


def test_priorities_exact_when_every_item_is_seen(capsys, tmp_path):
    with replay.ReplayServer([replay.tables.prioritized("p", 100, priority_exponent=0.5, signature=SIGNATURE)]) as srv:
        _write(srv.client(), "p", [float(i + 1) for i in range(10)])
        png = str(tmp_path / "p.png")
        code, out, _ = _run(capsys, "priorities", srv.address, "p", "--samples", "2000", "--png", png)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "priorities of p: exact: all 10 items seen in 2000 samples"
    assert lines[1] == "  min 1  median 5.5  max 10"
    counts = [int(line.split()[2]) for line in lines[3:13]]
    assert counts == [1] * 10 and lines[3].startswith("  [1, 1.9)") and lines[12].startswith("  [9.1, 10]")
    assert lines[-1] == f"saved histogram to {png}"
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_priorities_estimate_undoes_sampler_bias(capsys):
    # 70 items of priority 1 and 30 of priority 100; exponent 0.5 samples the 100s 81% of the time, so an
    # unweighted median would be 100, while the items' median is 1.
    with replay.ReplayServer([replay.tables.prioritized("p", 100, priority_exponent=0.5, signature=SIGNATURE)]) as srv:
        _write(srv.client(), "p", [1.0] * 70 + [100.0] * 30)
        code, out, _ = _run(capsys, "priorities", srv.address, "p", "--samples", "400", "--bins", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("priorities of p: estimated from 400 samples (")
    assert lines[1] == "  min 1  median 1  max 100"
    low, high = (float(line.split()[2]) for line in lines[3:5])
    assert 40 < low < 100 and 20 < high < 40 and low + high == pytest.approx(100, rel=0.3)


def test_checkpoint_prints_the_written_path(capsys, tmp_path):
    with replay.ReplayServer(
        [replay.tables.uniform("u", 10, signature=SIGNATURE)], checkpoint_dir=str(tmp_path)
    ) as srv:
        _write(srv.client(), "u", [1.0] * 2)
        code, out, _ = _run(capsys, "checkpoint", srv.address)
    path = out.strip()
    assert code == 0 and os.path.dirname(path) == str(tmp_path)
    assert os.path.isfile(os.path.join(path, "DONE"))


def test_encore_inspect_resolves_a_run_directory(server, capsys, tmp_path):
    program = {
        "name": "dqn",
        "replay_address": server.address,
        "nodes": [{"label": "replay", "index": 0, "address": server.address}],
    }
    (tmp_path / "program.json").write_text(json.dumps(program))
    code, out, _ = _run(capsys, "info", str(tmp_path), "--json", cli=agents.inspect.main)
    assert code == 0 and json.loads(out)["address"] == server.address and len(json.loads(out)["tables"]) == 5
    code, out, _ = _run(capsys, "info", server.address, "--json", cli=agents.inspect.main)  # host:port still works.
    assert code == 0 and json.loads(out)["address"] == server.address


def test_bad_addresses_get_one_clear_error(capsys, tmp_path):
    code, _, err = _run(capsys, "info", "no-port-here")
    assert code == 1 and "'no-port-here' is not host:port" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "info", str(tmp_path))  # replay does not read the agents' program.json.
    assert code == 1 and err.count("\n") == 1
    assert f"{tmp_path} is a directory" in err and "use `encore-inspect` or `python -m agents.inspect`" in err

    code, _, err = _run(capsys, "info", "no-port-here", cli=agents.inspect.main)
    assert code == 1 and "neither host:port (e.g. localhost:8000) nor an existing run directory" in err
    code, _, err = _run(capsys, "info", str(tmp_path), cli=agents.inspect.main)
    assert code == 1 and "has no program.json" in err and err.count("\n") == 1
    (tmp_path / "program.json").write_text(json.dumps({"name": "dqn", "nodes": [{"label": "learner"}]}))
    code, _, err = _run(capsys, "info", str(tmp_path), cli=agents.inspect.main)
    assert code == 1 and "records no replay_address" in err and err.count("\n") == 1
    (tmp_path / "program.json").write_text("{not json")
    code, _, err = _run(capsys, "info", str(tmp_path), cli=agents.inspect.main)
    assert code == 1 and "cannot read" in err and err.count("\n") == 1
    (tmp_path / "result.json").write_text("{}")
    code, _, err = _run(capsys, "info", str(tmp_path), cli=agents.inspect.main)
    assert code == 1 and err.count("\n") == 1
    assert "has finished" in err and f"python -m agents.run --resume {tmp_path}" in err


def test_top_rates_are_deltas_between_snapshots(server):
    client = server.client()
    before = client.server_info()
    _write(client, "prio", [1.0] * 10)
    list(client.sample("prio", 4, emit_timesteps=False))
    after = client.server_info()
    rates = {r.name: r for r in top.measure(before, after, seconds=2.0)}
    assert (rates["prio"].size, rates["prio"].inserts_per_second, rates["prio"].samples_per_second) == (17, 5.0, 2.0)
    assert rates["prio"].observed_samples_per_insert == pytest.approx(0.4)
    assert rates["prio"].configured_samples_per_insert is None  # MinSize limiter: no ratio enforced.
    assert (rates["full"].configured_samples_per_insert, rates["full"].blocked) == (2.0, "inserts")
    assert rates["starved"].blocked == "samples" and rates["nested"].blocked == "samples"
    frame = top.render_frame(server.address, list(rates.values()), 2.0, "")
    assert any(line.split()[:5] == ["prio", "17/100", "5.0", "2.0", "0.40"] for line in frame.splitlines())


def test_cli_top_once_prints_one_frame(server):
    result = _cli("top", server.address, "--once", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"encore-inspect top  {server.address}  rates over 0.5s"
    assert lines[1].split() == ["TABLE", "SIZE", "INSERT/S", "SAMPLE/S", "SPI", "OBS", "SPI", "CFG", "BLOCKED"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(rows) == ["full", "nested", "prio", "queue", "starved"]
    assert rows["prio"] == ["prio", "7/100", "0.0", "0.0", "-", "-", "-"]
    assert rows["full"] == ["full", "10/100", "0.0", "0.0", "-", "2", "inserts"]
    assert rows["queue"][1] == "3/10" and rows["starved"][-1] == "samples"


def test_cli_top_live_quits_on_q(server):
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.inspect", "top", server.address, "--interval", "0.2"],
        cwd=REPO,
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
    )
    os.close(terminal)
    screen = []

    def read_screen():
        if select.select([controller], [], [], 0.5)[0]:
            screen.append(os.read(controller, 65536))
        return b"BLOCKED" in b"".join(screen)

    try:
        wait_until(read_screen, "the first frame of `top`", timeout=120)
        assert b"(q quits)" in b"".join(screen) and b"\x1b[H" in b"".join(screen)
        os.write(controller, b"q")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        os.close(controller)


def test_cli_unreachable_address_fails_fast_with_one_line():
    address = f"localhost:{portpicker.pick_unused_port()}"
    result = _cli("info", address, "--timeout", "1")  # 1 s to answer (the message says so), then one error line.
    assert result.returncode == 1
    line = _error_line(result.stderr)
    assert f"no Reverb server answered at {address} within 1s: check that the replay server is running" in line
    assert result.stdout == ""


def test_cli_unknown_table_lists_existing_tables(server):
    result = _cli("sample", server.address, "nope")
    assert result.returncode == 1
    assert _error_line(result.stderr) == (
        f"encore-inspect: error: unknown table 'nope' on the Reverb server at {server.address}, whose tables are "
        "['full', 'nested', 'prio', 'queue', 'starved']: use one of those names, or give the server a table by "
        "that name."
    )


def test_cli_run_dir_without_replay_address(tmp_path):
    (tmp_path / "program.json").write_text(json.dumps({"name": "dqn", "nodes": []}))
    result = _cli("info", str(tmp_path), module="agents.inspect")
    assert result.returncode == 1
    assert "records no replay_address" in _error_line(result.stderr)
    result = _cli("info", str(tmp_path))
    assert result.returncode == 1
    assert "use `encore-inspect` or `python -m agents.inspect`" in _error_line(result.stderr)
