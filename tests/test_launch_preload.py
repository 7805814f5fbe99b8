"""local_mp's preloading: nodes that use TensorFlow are forked from one process that imported it once
(launch._fork_server), the others from a light one that imported only the program's modules; with
preload=False every node is spawned."""

import functools
import importlib
import json
import os
import signal
import sys
import textwrap

import cloudpickle
import psutil
import pytest
from conftest import wait_until

import launch as lp
from launch import _preloading


def _tables():
    import replay  # pylint: disable=import-outside-toplevel

    return [replay.tables.queue("queue", 10)]


def _report(path, **fields):
    """Writes what a node saw to `path`/<pid>.json: its pid, parent, process title and `fields`."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    me = psutil.Process()
    report = dict(pid=me.pid, ppid=me.ppid(), comm=me.name(), cmdline=" ".join(me.cmdline()), **fields)
    report["random"] = float(np.random.rand())  # Forked nodes draw their own random numbers.
    with open(os.path.join(path, f"{me.pid}.tmp"), "w") as f:
        json.dump(report, f)
    os.rename(os.path.join(path, f"{me.pid}.tmp"), os.path.join(path, f"{me.pid}.json"))


def _tf_client(client, path):
    """Runs a TF op, traces a tf.function, inserts into replay, reports, and waits for the stop."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    double = tf.function(lambda x: 2.0 * x, autograph=False)
    value = float(double(tf.reduce_sum(tf.constant([1.0, 2.0]))))
    client.insert([tf.constant(value)], {"queue": 1.0})
    _report(path, value=value)
    lp.wait_for_stop()


def _light(path):
    _report(path, tensorflow_imported="tensorflow" in sys.modules)
    lp.wait_for_stop()


def _reports(path, count):
    def read():
        return [json.load(open(os.path.join(path, n))) for n in os.listdir(path) if n.endswith(".json")]

    # A deadline for a loaded machine: a spawned node imports TensorFlow itself (5 s idle, much more when busy).
    wait_until(lambda: len(read()) >= count, f"{count} node reports", timeout=150)
    return read()


def _preloading_processes():
    return [p for p in psutil.Process().children() if "launch._fork_server" in " ".join(p.cmdline())]


def _preloading_process(kind="tensorflow"):
    """This (launching) process's preloading process of `kind`."""
    title = f"launch._fork_server {os.getpid()} {kind}"
    (server,) = [p for p in _preloading_processes() if title in " ".join(p.cmdline())]
    return server


# A node in a module of its own that imports TensorFlow at its top (so it is forked) and a module that the
# preloading process did not import (so the node imports it after the fork).
OWN_MODULE = textwrap.dedent("""
    import colorsys
    import tensorflow as tf

    import launch as lp
    from test_launch_preload import _report

    def run(path):
        _report(path, value=float(tf.reduce_sum(tf.constant(colorsys.rgb_to_hsv(0.2, 0.4, 0.4)))))
        lp.wait_for_stop()
""")


@pytest.fixture
def own_tf_module(tmp_path, monkeypatch):
    """OWN_MODULE, importable here and in node processes."""
    (tmp_path / "own_tf_module.py").write_text(OWN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("own_tf_module")
    del sys.modules["own_tf_module"]


def test_tf_nodes_are_forked_from_one_preloading_process_and_run_tensorflow_and_reverb(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("preload")
    replay_handle = program.add_node(lp.ReverbNode(_tables), label="replay")
    for _ in range(2):
        program.add_node(lp.PyNode(_tf_client, replay_handle, str(reports)), label="client")
    program.add_node(lp.PyNode(_light, str(reports)), label="light")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5, log_dir=str(tmp_path / "logs"))
    try:
        by_name = {r["comm"]: r for r in _reports(str(reports), 3)}
        server = _preloading_process()
        assert server.ppid() == os.getpid()
        replay_pid = controller.node_pids()["replay/0"]
        assert psutil.Process(replay_pid).ppid() == server.pid
        assert os.getpgid(replay_pid) == replay_pid  # Its own process group, as a spawned node.
        for name in ("client/0", "client/1"):
            assert by_name[name]["ppid"] == server.pid, name
            assert by_name[name]["value"] == 6.0
            # `ps` shows a forked node as it shows a spawned one: the node's entry point and label.
            assert f"launch._process_entry {name} " in by_name[name]["cmdline"]
            assert os.getpgid(by_name[name]["pid"]) == by_name[name]["pid"]
        assert by_name["client/0"]["random"] != by_name["client/1"]["random"]
        # The replay node serves what both clients inserted.
        assert replay_handle.dereference().server_info()["queue"].current_size == 2
        # A node that uses no TensorFlow is forked from the light preloading process and does not import it.
        assert by_name["light/0"]["ppid"] == _preloading_process("light").pid
        assert by_name["light/0"]["tensorflow_imported"] is False
    finally:
        controller.stop_and_wait()
    assert not _preloading_processes()
    assert (tmp_path / "logs" / "preload.log").read_text().startswith("Imported TensorFlow")  # Nothing else.
    assert len((tmp_path / "logs" / "preload.log").read_text().splitlines()) == 1


def test_a_program_that_refers_to_tensorflow_forks_every_node_which_imports_what_else_it_needs(tmp_path, own_tf_module):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("own_module")
    program.add_node(lp.PyNode(own_tf_module.run, str(reports)), label="own_module")
    program.add_node(lp.PyNode(_light, str(reports)), label="light")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5)
    try:
        by_name = {r["comm"]: r for r in _reports(str(reports), 2)}
        server = _preloading_process()
        assert by_name["own_module/0"]["value"] == pytest.approx(0.5 + 0.5 + 0.4)  # With colorsys, not preloaded.
        # Unpickling the program imports own_tf_module, and with it TensorFlow, in every node: all are forked.
        assert by_name["own_module/0"]["ppid"] == by_name["light/0"]["ppid"] == server.pid
        assert by_name["light/0"]["tensorflow_imported"] is True
        assert len(_preloading_processes()) == 1  # No light one: no node is without TensorFlow.
    finally:
        controller.stop_and_wait()


def _imports_tensorflow_itself(path):
    """Uses TensorFlow only inside its function: not seen as a TensorFlow node, it imports it once forked."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    _report(path, value=float(tf.reduce_sum(tf.constant([1.0, 2.0]))))
    lp.wait_for_stop()


def _maps_tensorflow(process):
    return any("tensorflow" in region.path for region in process.memory_maps())


def test_nodes_without_tensorflow_are_forked_from_a_light_preloading_process_that_never_imports_it(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("light")
    for _ in range(2):
        program.add_node(lp.PyNode(_light, str(reports)), label="light")
    program.add_node(lp.PyNode(_imports_tensorflow_itself, str(reports)), label="own_tf")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5, log_dir=str(tmp_path / "logs"))
    try:
        by_name = {r["comm"]: r for r in _reports(str(reports), 3)}
        (server,) = _preloading_processes()  # No TensorFlow one: no node needs it.
        assert server.pid == _preloading_process("light").pid and server.ppid() == os.getpid()
        for name, report in by_name.items():
            assert report["ppid"] == server.pid, name
            assert os.getpgid(report["pid"]) == report["pid"]  # Its own process group, as a spawned node.
            assert f"launch._process_entry {name} " in report["cmdline"]
        assert by_name["light/0"]["tensorflow_imported"] is by_name["light/1"]["tensorflow_imported"] is False
        assert by_name["light/0"]["random"] != by_name["light/1"]["random"]
        assert by_name["own_tf/0"]["value"] == 3.0  # A node may import TensorFlow after the fork.
        assert not _maps_tensorflow(server) and _maps_tensorflow(psutil.Process(by_name["own_tf/0"]["pid"]))
        assert not _maps_tensorflow(psutil.Process(by_name["light/0"]["pid"]))
    finally:
        controller.stop_and_wait()
    assert not _preloading_processes()
    log = (tmp_path / "logs" / "preload_light.log").read_text().splitlines()
    assert len(log) == 1 and log[0].startswith("Imported ") and "TensorFlow" not in log[0]
    assert not (tmp_path / "logs" / "preload.log").exists()


# A module that starts a thread when the preloading process imports it (the launch token is in the environment of
# the launcher's children, not of this test's process): forking that process is not safe.
THREAD_AT_IMPORT = textwrap.dedent("""
    import os
    import threading

    import launch as lp
    from test_launch_preload import _report

    if "ENCORE_LAUNCH_TOKEN" in os.environ:
        threading.Thread(target=threading.Event().wait, daemon=True).start()

    def run(path):
        _report(path)
        lp.wait_for_stop()
""")


def _launch_one_spawned_node(run, tmp_path, capfd) -> str:
    """Launches one node running `run(reports_dir)` under local_mp, checks that preloading failed and the node was
    spawned instead (its parent is the launcher), and returns the launcher's stderr."""
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("preload_fails")
    program.add_node(lp.PyNode(run, str(reports)), label="spawned")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5)
    try:
        (report,) = _reports(str(reports), 1)
        assert report["ppid"] == os.getpid()  # Spawned.
    finally:
        controller.stop_and_wait()
    err = capfd.readouterr().err
    assert "[launch] Preloading failed; nodes are spawned instead." in err
    return err


def test_a_light_preloading_process_with_a_thread_spawns_the_nodes_instead_and_says_why(tmp_path, monkeypatch, capfd):
    (tmp_path / "thread_at_import.py").write_text(THREAD_AT_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("thread_at_import")
    try:
        err = _launch_one_spawned_node(module.run, tmp_path, capfd)
    finally:
        del sys.modules["thread_at_import"]
    assert "threads run in the light preloading process" in err


def test_a_forked_node_killed_is_forked_again_within_its_restarts(tmp_path, capfd):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("preload_restart")
    replay_handle = program.add_node(lp.ReverbNode(_tables), label="replay")
    program.add_node(lp.PyNode(_tf_client, replay_handle, str(reports)), label="client", max_restarts=1)
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5)
    try:
        (first,) = _reports(str(reports), 1)
        os.kill(first["pid"], signal.SIGKILL)
        second = next(r for r in _reports(str(reports), 2) if r["pid"] != first["pid"])
        assert second["ppid"] == first["ppid"] == _preloading_process().pid
        assert controller.node_pids()["client/0"] == second["pid"]
        assert replay_handle.dereference().server_info()["queue"].current_size == 2
    finally:
        controller.stop_and_wait()
    assert "Node 'client/0' failed; restarting it (1/1)" in capfd.readouterr().err


def test_preload_false_spawns_every_node(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("no_preload")
    replay_handle = program.add_node(lp.ReverbNode(_tables), label="replay")
    program.add_node(lp.PyNode(_tf_client, replay_handle, str(reports)), label="client")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5, preload=False)
    try:
        (client,) = _reports(str(reports), 1)
        assert client["value"] == 6.0
        assert client["ppid"] == os.getpid()
        assert "launch._process_entry client/0 " in client["cmdline"] and client["comm"] == "client/0"
        assert not _preloading_processes()
    finally:
        controller.stop_and_wait()


@pytest.mark.parametrize("value, preload", [(None, True), ("1", True), ("0", False), ("false", False), ("no", False)])
def test_encore_preload_environment_variable_sets_the_default(value, preload, monkeypatch):
    if value is None:
        monkeypatch.delenv(_preloading.PRELOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(_preloading.PRELOAD_ENV, value)
    assert _preloading.preload_default() is preload


def test_preload_applies_to_local_mp_only():
    program = lp.Program("threads")
    program.add_node(lp.PyNode(print), label="printer")
    with pytest.raises(ValueError, match="preload applies to launch_type='local_mp' only, not 'local_mt'"):
        lp.launch(program, launch_type="local_mt", preload=True)


class _Served:
    def ping(self):
        return "pong"


def _by_value_tf_user():
    import tensorflow  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import


def _forked(**nodes):
    """The names of the nodes that local_mp forks from its TensorFlow preloading process in a program of `nodes`
    {label: node} (a node given as a function of the replay node's handle receives it)."""
    program = lp.Program("kinds")
    replay_handle = program.add_node(lp.ReverbNode(_tables), label="replay") if "replay" in nodes else None
    for label, node in nodes.items():
        if label != "replay":
            program.add_node(node if isinstance(node, lp.Node) else node(replay_handle), label=label)
    return sorted(node.name for node in _preloading.tensorflow_nodes(program, cloudpickle.dumps(program)))


def test_which_nodes_are_forked(own_tf_module):
    client = functools.partial(lp.PyNode, _tf_client, path="path")
    # A replay node and the nodes given its handle (a reverb.Client in the node), not the others.
    assert _forked(replay=None, client=client, light=lp.PyNode(_light, "path")) == ["client/0", "replay/0"]
    colocation = lp.MultiThreadingColocation([lp.PyNode(print), lp.ReverbNode(_tables)])
    assert _forked(both=colocation, served=lp.CourierNode(_Served)) == ["both/0"]
    # Judged by what a node refers to, not by what the body of a function of an importable module imports.
    assert _forked(client=lp.PyNode(_tf_client, None, "path"), light=lp.PyNode(_light, "path")) == []
    # Unpickling the program imports a module that imports TensorFlow at its top, in every node: all are forked.
    assert _forked(own=lp.PyNode(own_tf_module.run, "path"), light=lp.PyNode(_light, "path")) == ["light/0", "own/0"]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # As for the functions of a launching script.
    try:
        assert _forked(user=lp.PyNode(_by_value_tf_user), served=lp.CourierNode(_Served)) == ["served/0", "user/0"]
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_node_added_as_importing_tensorflow_is_forked_from_the_tensorflow_process():
    program = lp.Program("declared")
    program.add_node(lp.PyNode(_tf_client, None, "path"), label="said", imports_tensorflow=True)
    program.add_node(lp.PyNode(_light, "path"), label="unsaid")
    with program.group("workers", imports_tensorflow=True):
        program.add_node(lp.PyNode(_light, "path"))
        program.add_node(lp.PyNode(_light, "path"), imports_tensorflow=False)  # The node's own word wins.
    program.add_node(lp.PyNode(_light, "path"), label="after_group")  # The group's setting ends with it.
    forked = sorted(node.name for node in _preloading.tensorflow_nodes(program, cloudpickle.dumps(program)))
    assert forked == ["said/0", "workers/0"]


def test_a_node_added_as_importing_tensorflow_finds_it_imported(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    program = lp.Program("declared")
    program.add_node(lp.PyNode(_light, str(reports)), label="said", imports_tensorflow=True)
    program.add_node(lp.PyNode(_light, str(reports)), label="unsaid")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=5, log_dir=str(tmp_path / "logs"))
    try:
        by_name = {r["comm"]: r for r in _reports(str(reports), 2)}
        assert by_name["said/0"]["ppid"] == _preloading_process("tensorflow").pid
        assert by_name["said/0"]["tensorflow_imported"] is True  # Before its function ran.
        assert by_name["unsaid/0"]["ppid"] == _preloading_process("light").pid
        assert by_name["unsaid/0"]["tensorflow_imported"] is False
    finally:
        controller.stop_and_wait()


BROKEN_REPLAY = 'raise ImportError("replay broken on purpose")\n'


def test_a_failed_preloading_spawns_the_nodes_instead_and_says_why(tmp_path, own_tf_module, monkeypatch, capfd):
    shadow = tmp_path / "shadow"
    (shadow / "replay").mkdir(parents=True)
    (shadow / "replay" / "__init__.py").write_text(BROKEN_REPLAY)  # Only node processes import this one.
    monkeypatch.syspath_prepend(str(shadow))
    monkeypatch.chdir(tmp_path)  # Not the repository, whose replay `python -m` would find first.

    err = _launch_one_spawned_node(own_tf_module.run, tmp_path, capfd)
    assert "ImportError: replay broken on purpose" in err
