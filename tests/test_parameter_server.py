"""The parameter server's update schemes against optimizers applied by hand, and its refusals."""

import concurrent.futures
import re
import threading

import numpy as np
import pytest

from agents.utils.parameter_server import ParameterServer

_INITIAL = {"b": np.array([0.5, -0.5], np.float32), "w": np.arange(6, dtype=np.float32).reshape(3, 2)}


def _gradient(scale: float):
    w = np.full((3, 2), -scale, np.float32) + np.eye(3, 2, dtype=np.float32)
    return {"b": np.full(2, scale, np.float32), "w": w}


def _rmsprop():
    import tensorflow as tf

    return tf.keras.optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=1e-5)


def _server(**kwargs) -> ParameterServer:
    return ParameterServer(lambda: {k: v.copy() for k, v in _INITIAL.items()}, _rmsprop, **kwargs)


def _by_hand(updates):
    """The parameters after applying each gradient of `updates` in turn with a fresh RMSprop."""
    import tensorflow as tf

    variables = {k: tf.Variable(v) for k, v in _INITIAL.items()}
    optimizer = _rmsprop()
    for gradient in updates:
        optimizer.apply_gradients([(tf.constant(gradient[k]), variables[k]) for k in sorted(variables)])
    return {k: v.numpy() for k, v in variables.items()}


def _assert_parameters(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7)


def _push_in_threads(server, pushes):
    """Pushes (gradients, based_on_version, group) from one thread each; returns the futures, in order."""
    pool = concurrent.futures.ThreadPoolExecutor(len(pushes))
    futures = [pool.submit(server.push_gradients, *push) for push in pushes]
    pool.shutdown(wait=False)
    return pool, futures


def test_a_synchronous_round_of_k_pushes_applies_their_mean_once():
    server = _server(group_size=3, barrier_timeout=60.0)
    gradients = [_gradient(1.0), _gradient(2.0), _gradient(6.0)]
    pool, futures = _push_in_threads(server, [(g, 0) for g in gradients])
    results = [f.result(timeout=60) for f in futures]
    pool.shutdown()
    mean = {k: sum(g[k] for g in gradients) / 3 for k in _INITIAL}
    expected = _by_hand([mean])
    for version, parameters in results:  # Every push returns after the round's one update.
        assert version == 1
        _assert_parameters(parameters, expected)
    stats = server.stats()
    assert (stats["pushes"], stats["updates"], stats["short_rounds"]) == (3, 1, 0)
    assert stats["staleness_histogram"] == {"0": 3}
    # Not the same as three separate updates: RMSprop is not linear in the gradient.
    separate = _by_hand(gradients)
    assert not np.allclose(separate["w"], expected["w"])


def test_asynchronous_pushes_are_each_applied_and_their_staleness_recorded():
    server = _server()
    first, second, third = _gradient(1.0), _gradient(-2.0), _gradient(0.5)
    assert server.push_gradients(first, 0)[0] == 1
    assert server.push_gradients(second, 0)[0] == 2  # Computed on version 0, applied to version 1.
    version, parameters = server.push_gradients(third, 0)  # Two updates behind.
    assert version == 3
    _assert_parameters(parameters, _by_hand([first, second, third]))
    assert server.get(3) is None
    assert server.get(2)[0] == 3
    stats = server.stats()
    assert stats["staleness_histogram"] == {"0": 1, "1": 1, "2": 1}
    assert (stats["staleness_median"], stats["staleness_max"]) == (1.0, 2.0)
    assert (stats["pushes"], stats["updates"], stats["dropped_stale"]) == (3, 3, 0)
    assert stats["pushes_per_second"] > 0 and stats["updates_per_second"] > 0


def test_pushes_staler_than_max_staleness_are_dropped_and_counted():
    server = _server(max_staleness=1)
    for _ in range(2):
        server.push_gradients(_gradient(1.0), 0)  # Staleness 0, then 1: both applied.
    version, parameters = server.push_gradients(_gradient(9.0), 0)  # Staleness 2: dropped.
    assert version == 2
    _assert_parameters(parameters, _by_hand([_gradient(1.0), _gradient(1.0)]))
    stats = server.stats()
    assert (stats["pushes"], stats["updates"], stats["dropped_stale"]) == (3, 2, 1)


def test_groups_are_synchronous_inside_and_asynchronous_to_each_other():
    server = _server(group_size=2, num_groups=2, barrier_timeout=60.0)
    pool, (waiting,) = _push_in_threads(server, [(_gradient(1.0), 0, 1)])  # Group 1's round opens...
    # ...while group 0 completes two rounds of its own.
    pool0, futures0 = _push_in_threads(server, [(_gradient(2.0), 0, 0), (_gradient(4.0), 0, 0)])
    assert [f.result(timeout=60)[0] for f in futures0] == [1, 1]
    pool1, futures1 = _push_in_threads(server, [(_gradient(3.0), 1, 0), (_gradient(5.0), 1, 0)])
    assert [f.result(timeout=60)[0] for f in futures1] == [2, 2]
    assert not waiting.done()  # Group 1 still waits for its second member.
    version, parameters = server.push_gradients(_gradient(3.0), 2, group=1)
    assert version == 3 and waiting.result(timeout=60)[0] == 3
    for p in (pool, pool0, pool1):
        p.shutdown()
    mean = lambda a, b: {k: (_gradient(a)[k] + _gradient(b)[k]) / 2 for k in _INITIAL}  # noqa: E731
    _assert_parameters(parameters, _by_hand([mean(2.0, 4.0), mean(3.0, 5.0), mean(1.0, 3.0)]))
    # Group 1's first push was computed on version 0 and applied to version 2; every other push to its own.
    assert server.stats()["staleness_histogram"] == {"0": 5, "2": 1}


def test_a_member_that_never_pushes_does_not_hang_the_round_past_the_barrier_timeout():
    server = _server(group_size=3, barrier_timeout=0.3)
    gradients = [_gradient(1.0), _gradient(3.0)]
    pool, futures = _push_in_threads(server, [(g, 0) for g in gradients])  # The third member never pushes.
    results = [f.result(timeout=60) for f in futures]
    pool.shutdown()
    expected = _by_hand([{k: (gradients[0][k] + gradients[1][k]) / 2 for k in _INITIAL}])
    for version, parameters in results:
        assert version == 1
        _assert_parameters(parameters, expected)
    stats = server.stats()
    assert (stats["updates"], stats["short_rounds"]) == (1, 1)


def test_closing_releases_a_push_waiting_at_the_barrier():
    server = _server(group_size=2, barrier_timeout=600.0)
    pushed = threading.Event()
    result = []
    thread = threading.Thread(target=lambda: (pushed.set(), result.append(server.push_gradients(_gradient(1.0), 0))))
    thread.start()
    pushed.wait()
    server.close()
    thread.join(timeout=60)
    assert not thread.is_alive() and result[0][0] == 1


@pytest.mark.parametrize(
    "gradients, message",
    [
        ({"b": np.zeros(2, np.float32)}, "no gradient for the parameter at parameters['w']"),
        ({**_INITIAL, "v": np.zeros(1, np.float32)}, "a gradient at parameters['v'], where there is no parameter"),
        ({**_INITIAL, "w": np.zeros((2, 3), np.float32)}, "gradient at parameters['w'] is float32[2, 3]"),
        ({**_INITIAL, "b": np.zeros(2, np.float64)}, "['b'] is float64[2], but the parameter there is float32[2]"),
        ([np.zeros(2, np.float32), np.zeros((3, 2), np.float32)], "no gradient for the parameter at parameters"),
    ],
)
def test_a_push_that_does_not_match_the_parameters_is_refused_naming_the_leaf(gradients, message):
    server = _server()
    with pytest.raises(ValueError, match=re.escape(message)):
        server.push_gradients(gradients, 0)
    assert server.stats()["updates"] == 0 and server.version() == 0


def test_bad_settings_are_refused_naming_each():
    with pytest.raises(ValueError, match=r"group_size must be >= 1 \(got 0\).*barrier_timeout must be > 0"):
        _server(group_size=0, barrier_timeout=0)
    with pytest.raises(ValueError, match=r"group must be in \[0, 1\) \(got 1\)"):
        _server().push_gradients(_gradient(1.0), 0, group=1)
