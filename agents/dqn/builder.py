"""Builds DQN's replay table, adder, dataset, networks, learner and actors from a config."""

from typing import Any, Iterator, List, Optional, Tuple, Union

import replay  # noqa: I001  First: it imports TensorFlow with the CPU-only plugin noise filtered.
import reverb
from agents.dqn.acting import DQNActor, Schedule
from agents.dqn.config import DQNConfig
from agents.dqn.learning import DQNLearner
from agents.dqn.networks import QNetwork, make_q_network


class DQNBuilder:
    """Makes each piece of a DQN agent; the same pieces serve one process or many."""

    def __init__(self, config: DQNConfig):
        self.config = config

    def make_replay_tables(self, environment_spec: replay.EnvironmentSpec,
                           rate_limited: bool = True) -> List[reverb.Table]:
        """A prioritized table of n-step transitions.

        With `rate_limited`, a SampleToInsertRatio limiter holds learners and
        actors near `samples_per_insert`; without it (one process interleaving
        acting and learning, which must never block), only `min_replay_size` is
        enforced.
        """
        c = self.config
        return [replay.tables.prioritized(
            c.replay_table_name,
            max_size=c.max_replay_size,
            priority_exponent=c.priority_exponent,
            samples_per_insert=c.samples_per_insert if rate_limited else None,
            min_size=c.min_replay_size,
            tolerance=c.samples_per_insert_tolerance,
            signature=replay.NStepTransitionAdder.signature(environment_spec))]

    def make_adder(self, client: reverb.Client) -> replay.NStepTransitionAdder:
        c = self.config
        return replay.NStepTransitionAdder(client, c.n_step, c.discount,
                                           priority_fns={c.replay_table_name: None})

    def make_dataset_iterator(self, server_address: str,
                              rate_limiter_timeout_ms: int = -1) -> Iterator[reverb.ReplaySample]:
        """Batches of num_sgd_steps_per_step * batch_size transitions (one per learner step).

        The iterator ends if sampling stays blocked for the timeout.
        """
        c = self.config
        dataset = replay.make_dataset(server_address, c.replay_table_name,
                                      c.batch_size * c.num_sgd_steps_per_step,
                                      prefetch=c.prefetch_size,
                                      rate_limiter_timeout_ms=rate_limiter_timeout_ms)
        return iter(dataset)

    def make_networks(self, environment_spec: replay.EnvironmentSpec,
                      seed: Optional[int] = None) -> Tuple[QNetwork, QNetwork]:
        """The online and target Q-networks."""
        c = self.config
        online = make_q_network(environment_spec, c.hidden_sizes, c.dueling, seed, "q_network")
        target = make_q_network(environment_spec, c.hidden_sizes, c.dueling, seed, "target_q_network")
        return online, target

    def make_learner(self,
                     networks: Tuple[QNetwork, QNetwork],
                     iterator: Iterator[reverb.ReplaySample],
                     priority_updater: Optional[replay.PriorityUpdater] = None,
                     variable_server: Optional[Any] = None,
                     counter: Optional[Any] = None,
                     logger: Optional[Any] = None) -> DQNLearner:
        c = self.config
        network, target_network = networks
        return DQNLearner(
            network, target_network, iterator,
            discount=c.discount,
            learning_rate=c.learning_rate,
            target_update_period=c.target_update_period,
            importance_sampling_exponent=c.importance_sampling_exponent,
            huber_delta=c.huber_delta,
            max_gradient_norm=c.max_gradient_norm,
            priority_updater=priority_updater,
            variable_server=variable_server,
            publish_period=c.publish_period,
            num_sgd_steps_per_step=c.num_sgd_steps_per_step,
            counter=counter,
            logger=logger)

    def make_actor(self,
                   environment_spec: replay.EnvironmentSpec,
                   variable_client: Any,
                   epsilon: Union[float, Schedule],
                   adder: Optional[Any] = None,
                   seed: Optional[int] = None) -> DQNActor:
        return DQNActor(environment_spec.actions.num_values, self.config.dueling, variable_client,
                        epsilon=epsilon, adder=adder, seed=seed)
