"""N-step transitions: (s_t, a_t, R_{t:t+n}, D_{t:t+n}, s_{t+n}, e_t), as Acme's NStepTransitionAdder."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import collections
from typing import Any, Dict, Optional

import numpy as np
import reverb
import tree
from dm_env import specs as dm_specs

from replay import specs
from replay.adders import base


class NStepTransitionAdder(base.ReverbAdder):
    """Writes one n-step transition per step.

    R_{t:t+n} = r_t + g d_t r_{t+1} + ... + g^{n-1} d_t ... d_{t+n-2} r_{t+n-1} and
    D_{t:t+n} = g^{n-1} d_t ... d_{t+n-1}, where g is `discount` and d_i the environment discounts.
    Episodes start with the shorter transitions s_0→s_1, ..., s_0→s_n and end with s_{T-n+1}→s_T, ...,
    s_{T-1}→s_T. Extras are those of the first step.
    """

    def __init__(
        self,
        client: reverb.Client,
        n_step: int,
        discount: float,
        *,
        priority_fns: Optional[base.PriorityFnMapping] = None,
        max_in_flight_items: int = 16,
        validate_items: bool = True,
        timeout_ms: int = base.DEFAULT_TIMEOUT_MS,
    ):
        if not isinstance(n_step, (int, np.integer)) or n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1 (got {n_step!r}); 1 gives one-step transitions.")
        super().__init__(
            client,
            max_sequence_length=n_step + 1,
            max_in_flight_items=max_in_flight_items,
            priority_fns=priority_fns,
            validate_items=validate_items,
            timeout_ms=timeout_ms,
        )
        self.n_step = int(n_step)
        self._discount = np.float32(discount)
        self._recent = collections.deque(maxlen=self.n_step)  # (reward, discount) of the newest steps.

    def reset(self, timeout_ms: Optional[int] = None) -> None:
        super().reset(timeout_ms)
        self._recent.clear()

    def _observation_row(self, observation: Any, first: bool) -> Dict[str, Any]:
        return {"observation": observation}

    def _complete_row(self, step: Dict[str, Any]) -> Dict[str, Any]:
        # Only what transitions reference is written: per-step rewards and discounts live in the returns.
        self._recent.append((step.pop("reward"), step.pop("discount")))
        step["n_step_return"], step["total_discount"] = self._accumulate(self._recent)
        return step

    def _write(self) -> None:
        self._insert_transition(start=-(len(self._recent) + 1), returns=-2, next_observation=-1)

    def _write_last(self) -> None:
        # Rows: ..., s_T (closed with zeros); each shorter tail transition gets a row for its return.
        k = len(self._recent)
        for i in range(1, k):
            n_step_return, total_discount = self._accumulate(list(self._recent)[i:])
            self._writer.append({"n_step_return": n_step_return, "total_discount": total_discount})
            self._insert_transition(start=-(k + 1), returns=-1, next_observation=-(i + 1))

    def _insert_transition(self, start: int, returns: int, next_observation: int) -> None:
        history = self._writer.history
        at = lambda index: lambda column: column[index]  # noqa: E731
        transition = specs.Transition(
            observation=base.map_columns(at(start), history["observation"]),
            action=base.map_columns(at(start), history["action"]),
            reward=base.map_columns(at(returns), history["n_step_return"]),
            discount=base.map_columns(at(returns), history["total_discount"]),
            next_observation=base.map_columns(at(next_observation), history["observation"]),
            extras=base.map_columns(at(start), history["extras"]) if "extras" in history else (),
        )
        self._insert(transition)

    def _accumulate(self, steps):
        """(R, D) over `steps` = [(reward, discount), ...] from the transition's first step on."""
        first_reward, first_discount = steps[0]
        if not (tree.is_nested(first_reward) or tree.is_nested(first_discount)):
            return _n_step([r for r, _ in steps], [d for _, d in steps], self._discount)
        pairs = [_broadcast_structures(r, d) for r, d in steps]
        columns = zip(*(zip(tree.flatten(r), tree.flatten(d)) for r, d in pairs))
        leaves = [_n_step([r for r, _ in col], [d for _, d in col], self._discount) for col in columns]
        structure = pairs[0][0]
        return (
            tree.unflatten_as(structure, [ret for ret, _ in leaves]),
            tree.unflatten_as(structure, [total for _, total in leaves]),
        )

    @staticmethod
    def signature(environment_spec: specs.EnvironmentSpec, extras_spec: Any = ()) -> specs.Transition:
        """The table signature (a Transition of tf.TensorSpec) for this adder's items."""
        rewards, discounts = _broadcast_structures(environment_spec.rewards, environment_spec.discounts)
        rewards = tree.map_structure(_broadcast_spec, rewards, discounts)
        return specs.to_tensor_specs(
            specs.Transition(
                environment_spec.observations,
                environment_spec.actions,
                rewards,
                discounts,
                environment_spec.observations,
                extras_spec,
            )
        )

    @staticmethod
    def _row_specs_from_signature(signature: Any) -> Dict[str, Any]:
        return {"observation": signature.observation, "action": signature.action, "extras": signature.extras}


def _n_step(rewards, discounts, gamma):
    """The n-step return and total discount of one leaf (see the class docstring)."""
    if all(isinstance(x, np.generic) for x in (*rewards, *discounts)):
        return _n_step_scalars(rewards, discounts, gamma)
    total = np.array(discounts[0], copy=True)
    n_step_return = np.array(
        np.broadcast_to(rewards[0], np.broadcast(rewards[0], total).shape), np.result_type(rewards[0], total)
    )
    for reward, discount in zip(rewards[1:], discounts[1:]):
        total = (total * gamma).astype(total.dtype, copy=False)
        n_step_return += reward * total
        total = (total * discount).astype(total.dtype, copy=False)
    return n_step_return, total


def _n_step_scalars(rewards, discounts, gamma):
    """`_n_step` for numpy scalars, computed in float64 and returned in the same dtypes."""
    total, n_step_return = float(discounts[0]), float(rewards[0])
    for reward, discount in zip(rewards[1:], discounts[1:]):
        total *= float(gamma)
        n_step_return += float(reward) * total
        total *= float(discount)
    return_type = np.result_type(rewards[0], discounts[0]).type
    return return_type(n_step_return), discounts[0].dtype.type(total)


def _broadcast_structures(*nests):
    """Gives every argument the structure of the most nested one; leaves are repeated."""
    deepest = max(nests, key=lambda n: len(tree.flatten(n)) if tree.is_nested(n) else 0)
    return tuple(n if tree.is_nested(n) else tree.map_structure(lambda _, n=n: n, deepest) for n in nests)


def _broadcast_spec(*array_specs: dm_specs.Array) -> dm_specs.Array:
    shape = np.broadcast_shapes(*(tuple(s.shape) for s in array_specs))
    return dm_specs.Array(shape, np.result_type(*(s.dtype for s in array_specs)))
