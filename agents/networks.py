"""What agents' TensorFlow networks share: a flat list of variables that actors receive as numpy arrays, and the
learner state (networks, Adam optimizers, update count) every learner of them keeps."""

from replay import import_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import gc
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from agents import core

if TYPE_CHECKING:
    from agents.utils import Logger


class ParameterModule(tf.Module):
    """A tf.Module whose variables form one ordered list: published as numpy arrays for numpy twins that act,
    restored from such a list."""

    def __init__(self, name: str):
        super().__init__(name=name)
        self._parameters: List[tf.Variable] = []

    def _add_parameter(self, name: str, value: np.ndarray) -> None:
        """Appends a float32 variable; call inside `self.name_scope`."""
        self._parameters.append(tf.Variable(np.asarray(value, np.float32), name=name))

    @property
    def parameters(self) -> List[tf.Variable]:
        """The variables, in the order the numpy twin reads them."""
        return list(self._parameters)

    def numpy_parameters(self) -> List[np.ndarray]:
        return [p.numpy() for p in self._parameters]

    def set_parameters(self, values: Sequence[np.ndarray]) -> None:
        if len(values) != len(self._parameters):
            raise ValueError(
                f"{self.name} has {len(self._parameters)} parameter arrays, got {len(values)}: restore parameters "
                "saved from a network of the same configuration."
            )
        for variable, value in zip(self._parameters, values):
            variable.assign(value)


class NetworkLearner(core.Learner):
    """What every learner of ParameterModules keeps: its named networks (the first one published), their Adam
    optimizers and the update count. It checkpoints, saves, restores and publishes them; a subclass builds its
    optimizers with `_adam`, defines `step`, and reports each step through `self._reports`."""

    def __init__(
        self,
        networks: Mapping[str, ParameterModule],
        publisher: Optional[core.ParameterPublisher],
        publish_period: int,
        counter: Optional[core.Counting],
        logger: Optional["Logger"],
    ):
        self._named_networks = dict(networks)
        self._published_network = next(iter(self._named_networks.values()))
        self._optimizers: Dict[str, tf.keras.optimizers.Adam] = {}
        self._num_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_steps")
        self._reports = core.LearnerReports(
            self._published_network.numpy_parameters, publisher, int(publish_period), counter, logger
        )

    def _adam(self, name: str, learning_rate: float, network: ParameterModule) -> tf.keras.optimizers.Adam:
        """An Adam optimizer for `network`, built now (its slots exist before the first trace and restore) and
        checkpointed as `name`."""
        optimizer = tf.keras.optimizers.Adam(learning_rate)
        optimizer.build(network.parameters)
        self._optimizers[name] = optimizer
        return optimizer

    def _warm_up(self, step_fn: Callable[[Any], Any], element_spec: Any) -> None:
        """Traces and runs the tf.function `step_fn` once on a batch of zeros shaped as `element_spec` (batches
        with static shapes), then puts back every variable the step changed (networks, optimizers, step count).

        TensorFlow's first call of a traced function costs as much as the trace (graph optimization, kernels), so
        both are paid before the first parameters go out rather than at the first real batch. So is a full garbage
        collection: the import and the trace leave a heap whose first one otherwise stops the learner a dozen steps
        in (0.2-0.7 s; Python's next full collection waits until that heap has grown by a quarter).
        """
        variables = [
            *(v for network in self._named_networks.values() for v in network.parameters),
            *(v for optimizer in self._optimizers.values() for v in optimizer.variables),
            self._num_steps,
        ]
        before = [v.numpy() for v in variables]
        step_fn(tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), element_spec))
        for variable, value in zip(variables, before):
            variable.assign(value)
        gc.collect()

    @property
    def num_steps(self) -> int:
        return int(self._num_steps.numpy())

    @property
    def checkpoint_objects(self) -> Dict[str, Any]:
        return {**self._named_networks, **self._optimizers, "num_steps": self._num_steps}

    def publish(self) -> None:
        """Sends the published network's current parameters to the publisher, versioned by learner step."""
        self._reports.publish(self.num_steps)

    def get_variables(self, names: Sequence[str] = ()) -> List[Any]:
        return [self._published_network.numpy_parameters()]

    def save(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {name: net.numpy_parameters() for name, net in self._named_networks.items()}
        return {**state, "num_steps": self.num_steps}

    def restore(self, state: Dict[str, Any]) -> None:
        for name, network in self._named_networks.items():
            network.set_parameters(state[name])
        self._num_steps.assign(state["num_steps"])
