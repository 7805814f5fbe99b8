"""Builds R2D2's replay table, sequence adder, dataset, networks, learner and actors from a config.

TensorFlow and Reverb are imported by the methods that need them, so nodes that only act or evaluate
(numpy) never import them.
"""

from typing import TYPE_CHECKING, Iterator, List, Optional, Tuple

from agents import core, envs
from agents.dqn.acting import actor_epsilon
from agents.r2d2.acting import R2D2Actor, extras_spec
from agents.r2d2.config import R2D2Config

if TYPE_CHECKING:
    import reverb

    import replay
    from agents.r2d2.learning import R2D2Learner
    from agents.r2d2.networks import RecurrentQNetwork
    from agents.utils import Logger


class R2D2Builder(core.Builder):
    """R2D2: actors write overlapping sequences, with their recurrent state, into prioritized replay; one learner
    replays them with a burn-in; an Ape-X epsilon ladder across actors."""

    name = "r2d2"
    config_class = R2D2Config
    prioritized = True

    def __init__(self, config: R2D2Config):
        super().__init__(config)
        self.priority_table = config.replay_table_name

    def make_replay_tables(
        self, environment_spec: "replay.EnvironmentSpec", rate_limited: bool = True
    ) -> List["reverb.Table"]:
        """A prioritized table of sequences; with `rate_limited`, a SampleToInsertRatio limiter holds learners
        and actors near `samples_per_insert`."""
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
                signature=replay.SequenceAdder.signature(environment_spec, extras_spec(c.lstm_size), c.sequence_length),
            )
        ]

    def make_adder(self, client: "reverb.Client") -> "replay.SequenceAdder":
        """Sequences of sequence_length rows every sequence_period rows; an episode's last sequence is padded with
        zero rows to the full length (EndBehavior.ZERO_PAD, as Acme's R2D2), so no sequence crosses an episode's
        start; the closing and padding rows hold `valid` False."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return replay.SequenceAdder(
            client,
            sequence_length=c.sequence_length,
            period=c.sequence_period,
            end_of_episode_behavior=replay.EndBehavior.ZERO_PAD,
            priority_fns={c.replay_table_name: None},
        )

    def make_dataset_iterator(
        self, server_address: str, rate_limiter_timeout_ms: int = -1
    ) -> Iterator["reverb.ReplaySample"]:
        """Batches of batch_size sequences (one per learner step); the iterator ends if sampling stays blocked for
        the timeout."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return iter(
            replay.make_dataset(
                server_address,
                c.replay_table_name,
                c.batch_size,
                prefetch=c.prefetch_size,
                rate_limiter_timeout_ms=rate_limiter_timeout_ms,
            )
        )

    def make_networks(
        self, environment_spec: "replay.EnvironmentSpec", seed: int = 0
    ) -> Tuple["RecurrentQNetwork", "RecurrentQNetwork"]:
        """The online and target networks."""
        from agents.r2d2.networks import make_recurrent_q_network  # pylint: disable=import-outside-toplevel

        c = self.config
        return tuple(
            make_recurrent_q_network(environment_spec, c.hidden_sizes, c.lstm_size, c.dueling, seed, name)
            for name in ("recurrent_q_network", "target_recurrent_q_network")
        )

    def make_learner(
        self,
        networks: Tuple["RecurrentQNetwork", "RecurrentQNetwork"],
        iterator: Iterator["reverb.ReplaySample"],
        *,
        publisher: Optional[core.ParameterPublisher] = None,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[core.Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> "R2D2Learner":
        from agents.r2d2.learning import R2D2Learner  # pylint: disable=import-outside-toplevel

        c = self.config
        network, target_network = networks
        return R2D2Learner(
            network,
            target_network,
            iterator,
            burn_in=c.burn_in,
            discount=c.discount,
            n_step=c.n_step,
            learning_rate=c.learning_rate,
            target_update_period=c.target_update_period,
            importance_sampling_exponent=c.importance_sampling_exponent,
            max_priority_weight=c.max_priority_weight,
            value_rescaling_epsilon=c.value_rescaling_epsilon,
            max_gradient_norm=c.max_gradient_norm,
            priority_updater=priority_updater,
            publisher=publisher,
            publish_period=c.publish_period,
            counter=counter,
            logger=logger,
        )

    def make_actor(
        self,
        environment_spec: "replay.EnvironmentSpec",
        variable_client: core.VariableClientLike,
        adder: Optional["replay.Adder"],
        settings: core.ActorSettings,
    ) -> R2D2Actor:
        """Epsilon decays linearly in a single process; distributed actors take rungs of the Ape-X ladder."""
        c = self.config
        epsilon = actor_epsilon(settings, c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps)
        return R2D2Actor(
            envs.num_discrete_actions(environment_spec, "R2D2"),
            c.lstm_size,
            c.dueling,
            variable_client,
            epsilon=epsilon,
            adder=adder,
            seed=settings.seed,
        )

    def make_evaluation_actor(
        self, environment_spec: "replay.EnvironmentSpec", variable_client: core.VariableClientLike, seed: int
    ) -> R2D2Actor:
        c = self.config
        return R2D2Actor(
            envs.num_discrete_actions(environment_spec, "R2D2"), c.lstm_size, c.dueling, variable_client, seed=seed
        )

    def variable_update_period(self) -> int:
        return self.config.variable_update_period

    def learner_steps_per_actor_step(self) -> float:
        """Each actor step pays for samples_per_insert / sequence_period sampled sequences (one sequence is
        written every sequence_period steps)."""
        c = self.config
        return c.samples_per_insert / (c.batch_size * c.sequence_period)

    def min_actor_steps_before_learning(self) -> int:
        """Enough steps for the table's minimum of sequences whatever the episodes' lengths: every episode writes at
        least one sequence per sequence_length of its steps (a short one, one zero-padded sequence)."""
        c = self.config
        return c.min_replay_size * c.sequence_length

    def check_environment(self, environment_spec: "replay.EnvironmentSpec") -> None:
        envs.num_discrete_actions(environment_spec, "R2D2")
