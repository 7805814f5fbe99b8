"""The recurrent Q-network as a tf.Module; acting.numpy_q_step is its numpy twin."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from agents import envs
from agents.networks import ParameterModule
from replay import EnvironmentSpec

State = Tuple[tf.Tensor, tf.Tensor]  # (hidden, cell), each [B, lstm_size].


class RecurrentQNetwork(ParameterModule):
    """An MLP torso (ReLU), an LSTM, and a Q head (dueling: Q = V + A - mean(A)).

    `parameters` lists the variables in the order `acting.numpy_q_step` reads them: (w, b) per torso layer, the
    LSTM's input weights [in, 4H], recurrent weights [H, 4H] and bias [4H] (gates input, forget, candidate,
    output; the forget gate's bias starts at 1), then (w, b) per head (value then advantage when dueling).
    """

    def __init__(
        self,
        observation_size: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64,),
        lstm_size: int = 64,
        dueling: bool = True,
        seed: Optional[int] = None,
        name: str = "recurrent_q_network",
    ):
        super().__init__(name=name)
        self.observation_size = observation_size
        self.num_actions = num_actions
        self.hidden_sizes = tuple(hidden_sizes)
        self.lstm_size = lstm_size
        self.dueling = dueling
        rng = np.random.default_rng(seed)

        def glorot(fan_in: int, fan_out: int) -> np.ndarray:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, (fan_in, fan_out))

        sizes = [observation_size, *self.hidden_sizes]
        with self.name_scope:
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                self._add_parameter(f"w{i}", glorot(fan_in, fan_out))
                self._add_parameter(f"b{i}", np.zeros(fan_out))
            self._add_parameter("lstm_input_w", glorot(sizes[-1], 4 * lstm_size))
            self._add_parameter("lstm_recurrent_w", glorot(lstm_size, 4 * lstm_size))
            bias = np.zeros(4 * lstm_size)
            bias[lstm_size : 2 * lstm_size] = 1.0  # Forget gate open at first: memory survives early training.
            self._add_parameter("lstm_b", bias)
            heads = {"value": 1, "advantage": num_actions} if dueling else {"q": num_actions}
            for head, size in heads.items():
                self._add_parameter(f"{head}_w", glorot(lstm_size, size))
                self._add_parameter(f"{head}_b", np.zeros(size))

    def initial_state(self, batch_size: int) -> State:
        zeros = tf.zeros([batch_size, self.lstm_size], tf.float32)
        return zeros, zeros

    def unroll(self, observations: tf.Tensor, state: State) -> Tuple[tf.Tensor, State]:
        """(Q-values [T, B, num_actions], final state) over time-major observations [T, B, ...] from `state`. T is
        static: the time loop is unrolled in the graph."""
        steps = observations.shape[0]
        batch = tf.shape(observations)[1]
        params = self._parameters
        hidden = tf.reshape(tf.cast(observations, tf.float32), [-1, self.observation_size])
        num_torso = len(self.hidden_sizes)
        for i in range(num_torso):
            hidden = tf.nn.relu(tf.matmul(hidden, params[2 * i]) + params[2 * i + 1])
        input_w, recurrent_w, lstm_b = params[2 * num_torso : 2 * num_torso + 3]
        # The input's share of every gate for all steps at once; only the recurrent share is sequential.
        inputs = tf.reshape(tf.matmul(hidden, input_w) + lstm_b, [steps, batch, 4 * self.lstm_size])
        h, c = state
        outputs = []
        for t in range(steps):
            i, f, g, o = tf.split(inputs[t] + tf.matmul(h, recurrent_w), 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        core = tf.reshape(tf.stack(outputs), [-1, self.lstm_size])
        heads = [tf.matmul(core, params[j]) + params[j + 1] for j in range(2 * num_torso + 3, len(params), 2)]
        if self.dueling:
            value, advantage = heads
            q_values = value + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)
        else:
            q_values = heads[0]
        return tf.reshape(q_values, [steps, batch, self.num_actions]), (h, c)


def make_recurrent_q_network(
    environment_spec: EnvironmentSpec,
    hidden_sizes: Sequence[int] = (64,),
    lstm_size: int = 64,
    dueling: bool = True,
    seed: Optional[int] = None,
    name: str = "recurrent_q_network",
) -> RecurrentQNetwork:
    """A RecurrentQNetwork sized for a flat observation and a discrete action spec."""
    observation_size = int(np.prod(environment_spec.observations.shape))
    num_actions = envs.num_discrete_actions(environment_spec, "R2D2")
    return RecurrentQNetwork(observation_size, num_actions, hidden_sizes, lstm_size, dueling, seed, name)
