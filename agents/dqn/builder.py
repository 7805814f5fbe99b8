"""Builds DQN's replay table, adder, dataset, networks, learner and actors from a config.

TensorFlow and Reverb are imported by the methods that need them, so nodes that only act or evaluate
(numpy) never import them.
"""

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from agents import core, envs
from agents.dqn.acting import DQNActor, actor_epsilon
from agents.dqn.config import DQNConfig

if TYPE_CHECKING:
    import reverb

    import replay
    from agents.dqn.learning import DQNLearner, ParallelDQNLearner
    from agents.dqn.networks import QNetwork
    from agents.utils import Logger, ParameterServer


class DQNBuilder(core.Builder):
    """Ape-X DQN: prioritized n-step transitions, double DQN, an epsilon ladder across actors."""

    name = "apex_dqn"
    config_class = DQNConfig
    prioritized = True

    def __init__(self, config: DQNConfig):
        super().__init__(config)
        self.priority_table = config.replay_table_name

    def make_replay_tables(
        self, environment_spec: "replay.EnvironmentSpec", rate_limited: bool = True
    ) -> List["reverb.Table"]:
        """A prioritized table of n-step transitions; with `rate_limited`, a SampleToInsertRatio limiter holds
        learners and actors near `samples_per_insert`."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return [
            replay.tables.prioritized(
                c.replay_table_name,
                max_size=c.max_replay_size,
                priority_exponent=c.priority_exponent,
                samples_per_insert=c.samples_per_insert if rate_limited else None,
                min_size=c.min_replay_size,
                tolerance=c.samples_per_insert_tolerance,
                signature=replay.NStepTransitionAdder.signature(environment_spec),
            )
        ]

    def make_adder(self, client: "reverb.Client") -> "replay.NStepTransitionAdder":
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return replay.NStepTransitionAdder(client, c.n_step, c.discount, priority_fns={c.replay_table_name: None})

    def make_dataset_iterator(
        self, server_address: str, rate_limiter_timeout_ms: int = -1
    ) -> Iterator["reverb.ReplaySample"]:
        """Batches of num_sgd_steps_per_step * batch_size transitions (one per learner step); the iterator
        ends if sampling stays blocked for the timeout."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return iter(
            replay.make_dataset(
                server_address,
                c.replay_table_name,
                c.batch_size * c.num_sgd_steps_per_step,
                prefetch=c.prefetch_size,
                rate_limiter_timeout_ms=rate_limiter_timeout_ms,
            )
        )

    def make_networks(self, environment_spec: "replay.EnvironmentSpec", seed: int = 0) -> Tuple["QNetwork", "QNetwork"]:
        """The online and target Q-networks."""
        from agents.dqn.networks import make_q_network  # pylint: disable=import-outside-toplevel

        c = self.config
        online = make_q_network(environment_spec, c.hidden_sizes, c.dueling, seed, "q_network")
        target = make_q_network(environment_spec, c.hidden_sizes, c.dueling, seed, "target_q_network")
        return online, target

    def make_learner(
        self,
        networks: Tuple["QNetwork", "QNetwork"],
        iterator: Iterator["reverb.ReplaySample"],
        *,
        publisher: Optional[core.ParameterPublisher] = None,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[core.Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> "DQNLearner":
        from agents.dqn.learning import DQNLearner  # pylint: disable=import-outside-toplevel

        c = self.config
        network, target_network = networks
        return DQNLearner(
            network,
            target_network,
            iterator,
            learning_rate=c.learning_rate,
            priority_updater=priority_updater,
            publisher=publisher,
            publish_period=c.publish_period,
            counter=counter,
            logger=logger,
            **self._learning_settings(),
        )

    def _learning_settings(self) -> Dict[str, Any]:
        """What the one learner and each of several learners take alike from the config."""
        c = self.config
        return dict(
            discount=c.discount,
            target_update_period=c.target_update_period,
            importance_sampling_exponent=c.importance_sampling_exponent,
            huber_delta=c.huber_delta,
            max_gradient_norm=c.max_gradient_norm,
            num_sgd_steps_per_step=c.num_sgd_steps_per_step,
        )

    def num_learners(self) -> int:
        return self.config.num_learners

    def make_parameter_server(
        self, environment_spec: "replay.EnvironmentSpec", seed: int, logger: Optional["Logger"] = None
    ) -> "ParameterServer":
        """The online network's initial parameters and Adam, the single learner's optimizer, so that one learner
        and several differ only in who applies the updates; asynchronous unless `synchronous_learners` (then the
        mean of one push from every learner per update)."""
        from agents.dqn.networks import make_q_network  # pylint: disable=import-outside-toplevel
        from agents.utils import ParameterServer  # pylint: disable=import-outside-toplevel

        c = self.config

        def make_parameters():
            return make_q_network(environment_spec, c.hidden_sizes, c.dueling, seed, "q_network").numpy_parameters()

        def make_optimizer():
            import tensorflow as tf  # pylint: disable=import-outside-toplevel  # Imported by the server already.

            return tf.keras.optimizers.Adam(c.learning_rate)

        group_size = c.num_learners if c.synchronous_learners else 1
        return ParameterServer(make_parameters, make_optimizer, group_size=group_size, logger=logger)

    def make_gradient_learner(
        self,
        networks: Tuple["QNetwork", "QNetwork"],
        iterator: Iterator["reverb.ReplaySample"],
        parameter_server: core.GradientSink,
        *,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[core.Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> "ParallelDQNLearner":
        from agents.dqn.learning import ParallelDQNLearner  # pylint: disable=import-outside-toplevel

        network, target_network = networks
        return ParallelDQNLearner(
            network,
            target_network,
            iterator,
            parameter_server,
            priority_updater=priority_updater,
            counter=counter,
            logger=logger,
            **self._learning_settings(),
        )

    def make_actor(
        self,
        environment_spec: "replay.EnvironmentSpec",
        variable_client: core.VariableClientLike,
        adder: Optional["replay.Adder"],
        settings: core.ActorSettings,
    ) -> DQNActor:
        """Epsilon decays linearly in a single process; distributed actors take rungs of the Ape-X ladder."""
        c = self.config
        epsilon = actor_epsilon(
            settings, c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps, c.apex_epsilon_base, c.apex_epsilon_alpha
        )
        return DQNActor(
            envs.num_discrete_actions(environment_spec, "DQN"),
            c.dueling,
            variable_client,
            epsilon=epsilon,
            adder=adder,
            seed=settings.seed,
        )

    def make_evaluation_actor(
        self, environment_spec: "replay.EnvironmentSpec", variable_client: core.VariableClientLike, seed: int
    ) -> DQNActor:
        return DQNActor(
            envs.num_discrete_actions(environment_spec, "DQN"),
            self.config.dueling,
            variable_client,
            epsilon=0.0,
            seed=seed,
        )

    def variable_update_period(self) -> int:
        return self.config.variable_update_period

    def learner_steps_per_actor_step(self) -> float:
        """Each actor step pays for samples_per_insert sampled transitions."""
        c = self.config
        return c.samples_per_insert / (c.batch_size * c.num_sgd_steps_per_step)

    def min_actor_steps_before_learning(self) -> int:
        return self.config.min_replay_size

    def check_environment(self, environment_spec: "replay.EnvironmentSpec") -> None:
        envs.num_discrete_actions(environment_spec, "DQN")
