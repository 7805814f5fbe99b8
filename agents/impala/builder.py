"""Builds IMPALA's queue table, sequence adder, dataset, network, learner and actors from a config.

TensorFlow and Reverb are imported by the methods that need them, so nodes that only act or evaluate
(numpy) never import them.
"""

from typing import TYPE_CHECKING, Iterator, List, Optional

from agents import core, envs
from agents.impala.acting import IMPALAActor, extras_spec
from agents.impala.config import IMPALAConfig, check_queue_size

if TYPE_CHECKING:
    import reverb

    import replay
    from agents.impala.learning import IMPALALearner
    from agents.impala.networks import ActorCriticNetwork
    from agents.utils import Logger

# One process that acts and learns consumes what it writes; its queue only needs room for the learner's lag.
_SINGLE_PROCESS_QUEUE_SIZE = 10_000


class IMPALABuilder(core.Builder):
    """IMPALA: actors write sequences of their behaviour policy (with its logits) into a FIFO queue, each
    sampled once by a V-trace learner."""

    name = "impala"
    config_class = IMPALAConfig
    prioritized = False
    repeatable_sampling = True  # A queue: each batch is the next sequences in the order they were written.

    def make_replay_tables(
        self, environment_spec: "replay.EnvironmentSpec", rate_limited: bool = True
    ) -> List["reverb.Table"]:
        """A queue of max_queue_size sequences (writers wait while it is full, the learner while it is empty).
        Without `rate_limited` (one process, which must never block) the queue is large enough never to fill."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        check_queue_size(c.max_queue_size, c.batch_size)
        return [
            replay.tables.queue(
                c.replay_table_name,
                max_size=c.max_queue_size if rate_limited else max(c.max_queue_size, _SINGLE_PROCESS_QUEUE_SIZE),
                signature=replay.SequenceAdder.signature(
                    environment_spec,
                    extras_spec(envs.num_discrete_actions(environment_spec, "IMPALA")),
                    c.sequence_length,
                ),
            )
        ]

    def actors_wait_for_parameters(self) -> bool:
        return True

    def make_adder(self, client: "reverb.Client") -> "replay.SequenceAdder":
        """Sequences of sequence_length rows every sequence_period rows, running on across episodes
        (EndBehavior.CONTINUE): no padding to compute on, and one sequence per sequence_period rows whatever the
        episodes' lengths. The row that closes an episode (its last observation, for the bootstrap) holds
        `valid` False, so the learner neither learns from it nor lets V-trace run across it."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return replay.SequenceAdder(
            client,
            sequence_length=c.sequence_length,
            period=c.sequence_period,
            end_of_episode_behavior=replay.EndBehavior.CONTINUE,
            priority_fns={c.replay_table_name: None},
        )

    def make_dataset_iterator(
        self, server_address: str, rate_limiter_timeout_ms: int = -1
    ) -> Iterator["reverb.ReplaySample"]:
        """Batches of batch_size sequences in queue order (one per learner step); the iterator ends if sampling
        stays blocked for the timeout."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return iter(
            replay.make_dataset(
                server_address,
                c.replay_table_name,
                c.batch_size,
                prefetch=c.prefetch_size,
                num_workers_per_iterator=1,
                rate_limiter_timeout_ms=rate_limiter_timeout_ms,
            )
        )

    def make_networks(self, environment_spec: "replay.EnvironmentSpec", seed: int = 0) -> "ActorCriticNetwork":
        from agents.impala.networks import make_actor_critic_network  # pylint: disable=import-outside-toplevel

        return make_actor_critic_network(environment_spec, self.config.hidden_sizes, seed)

    def make_learner(
        self,
        networks: "ActorCriticNetwork",
        iterator: Iterator["reverb.ReplaySample"],
        *,
        publisher: Optional[core.ParameterPublisher] = None,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[core.Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> "IMPALALearner":
        from agents.impala.learning import IMPALALearner  # pylint: disable=import-outside-toplevel

        c = self.config
        return IMPALALearner(
            networks,
            iterator,
            discount=c.discount,
            reward_scale=c.reward_scale,
            learning_rate=c.learning_rate,
            baseline_cost=c.baseline_cost,
            entropy_cost=c.entropy_cost,
            max_gradient_norm=c.max_gradient_norm,
            clip_rho_threshold=c.clip_rho_threshold,
            clip_pg_rho_threshold=c.clip_pg_rho_threshold,
            clip_c_threshold=c.clip_c_threshold,
            vtrace_lambda=c.vtrace_lambda,
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
    ) -> IMPALAActor:
        """Every actor samples from the policy (no exploration schedule: the entropy bonus keeps it stochastic)."""
        return IMPALAActor(
            envs.num_discrete_actions(environment_spec, "IMPALA"), variable_client, adder, seed=settings.seed
        )

    def make_evaluation_actor(
        self, environment_spec: "replay.EnvironmentSpec", variable_client: core.VariableClientLike, seed: int
    ) -> IMPALAActor:
        return IMPALAActor(
            envs.num_discrete_actions(environment_spec, "IMPALA"), variable_client, greedy=True, seed=seed
        )

    def variable_update_period(self) -> int:
        return self.config.variable_update_period

    def learner_steps_per_actor_step(self) -> float:
        """One learner step per batch_size sequences written: an actor writes one sequence every sequence_period
        rows, and rows are actor steps plus one closing row per episode (learner_steps_per_episode pays for
        those), so the learner consumes what is written without ever outrunning the queue."""
        c = self.config
        return 1.0 / (c.batch_size * c.sequence_period)

    def learner_steps_per_episode(self) -> float:
        """An episode's closing row (its last observation, for the bootstrap) is a row of the sequences too.
        Without this the queue grows by one sequence per sequence_period episodes, without bound, and the
        learner learns from ever staler policies (CartPole's early 10-step episodes: ~10% more sequences than
        it consumed)."""
        return self.learner_steps_per_actor_step()

    def min_actor_steps_before_learning(self) -> int:
        """Covers the lag of the first sequence (written after sequence_length steps) and of the episode being
        played, which has written fewer than one sequence per sequence_period of its steps so far."""
        c = self.config
        return c.sequence_length + c.sequence_period

    def check_environment(self, environment_spec: "replay.EnvironmentSpec") -> None:
        envs.num_discrete_actions(environment_spec, "IMPALA")
