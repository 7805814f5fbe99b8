"""Builds D4PG's replay table, adder, dataset, networks, learner and actors from a config.

TensorFlow and Reverb are imported by the methods that need them, so nodes that only act or evaluate
(numpy) never import them.
"""

from typing import TYPE_CHECKING, Iterator, List, Optional

from agents import core, envs
from agents.d4pg.acting import D4PGActor, sigma_ladder
from agents.d4pg.config import D4PGConfig

if TYPE_CHECKING:
    import reverb

    import replay
    from agents.d4pg.learning import D4PGLearner
    from agents.d4pg.networks import D4PGNetworks
    from agents.utils import Logger


class D4PGBuilder(core.Builder):
    """D4PG: n-step transitions in a uniform (or prioritized) FIFO table held near samples_per_insert by a rate
    limiter, a categorical critic, a deterministic policy, and a ladder of Gaussian exploration across actors."""

    name = "d4pg"
    config_class = D4PGConfig

    def __init__(self, config: D4PGConfig):
        super().__init__(config)
        self.prioritized = config.prioritized
        self.priority_table = config.replay_table_name

    def make_replay_tables(
        self, environment_spec: "replay.EnvironmentSpec", rate_limited: bool = True
    ) -> List["reverb.Table"]:
        """One table of n-step transitions, FIFO eviction, sampled uniformly (or by priority when `prioritized`);
        with `rate_limited`, a SampleToInsertRatio limiter holds learner and actors near samples_per_insert."""
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        common = dict(
            max_size=c.max_replay_size,
            samples_per_insert=c.samples_per_insert if rate_limited else None,
            min_size=c.min_replay_size,
            tolerance=c.samples_per_insert_tolerance,
            signature=replay.NStepTransitionAdder.signature(environment_spec),
        )
        if c.prioritized:
            return [replay.tables.prioritized(c.replay_table_name, priority_exponent=c.priority_exponent, **common)]
        return [replay.tables.uniform(c.replay_table_name, **common)]

    def make_adder(self, client: "reverb.Client") -> "replay.NStepTransitionAdder":
        import replay  # pylint: disable=import-outside-toplevel

        c = self.config
        return replay.NStepTransitionAdder(client, c.n_step, c.discount, priority_fns={c.replay_table_name: None})

    def make_dataset_iterator(
        self, server_address: str, rate_limiter_timeout_ms: int = -1
    ) -> Iterator["reverb.ReplaySample"]:
        """Batches of batch_size transitions (one per learner step); the iterator ends if sampling stays blocked
        for the timeout."""
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

    def make_networks(self, environment_spec: "replay.EnvironmentSpec", seed: int = 0) -> "D4PGNetworks":
        from agents.d4pg.networks import make_networks  # pylint: disable=import-outside-toplevel

        c = self.config
        v_min, v_max = c.value_range(environment_spec)
        return make_networks(
            environment_spec, c.policy_hidden_sizes, c.critic_hidden_sizes, c.num_atoms, v_min, v_max, seed
        )

    def make_learner(
        self,
        networks: "D4PGNetworks",
        iterator: Iterator["reverb.ReplaySample"],
        *,
        publisher: Optional[core.ParameterPublisher] = None,
        priority_updater: Optional["replay.PriorityUpdater"] = None,
        counter: Optional[core.Counting] = None,
        logger: Optional["Logger"] = None,
    ) -> "D4PGLearner":
        from agents.d4pg.learning import D4PGLearner  # pylint: disable=import-outside-toplevel

        c = self.config
        return D4PGLearner(
            networks,
            iterator,
            discount=c.discount,
            policy_learning_rate=c.policy_learning_rate,
            critic_learning_rate=c.critic_learning_rate,
            dqda_clipping=c.dqda_clipping,
            max_gradient_norm=c.max_gradient_norm,
            target_update_period=c.target_update_period,
            target_update_tau=c.target_update_tau,
            importance_sampling_exponent=c.importance_sampling_exponent,
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
    ) -> D4PGActor:
        """Actor i of N explores with the i-th sigma of the ladder (a single process: sigma_max)."""
        c = self.config
        minimum, maximum = envs.bounded_actions(environment_spec, "D4PG")
        num_actors = 1 if settings.single_process else settings.num_actors
        sigma = sigma_ladder(num_actors, c.sigma_max, c.sigma_min)[settings.actor_id]
        return D4PGActor(minimum, maximum, variable_client, sigma=sigma, adder=adder, seed=settings.seed)

    def make_evaluation_actor(
        self, environment_spec: "replay.EnvironmentSpec", variable_client: core.VariableClientLike, seed: int
    ) -> D4PGActor:
        minimum, maximum = envs.bounded_actions(environment_spec, "D4PG")
        return D4PGActor(minimum, maximum, variable_client, sigma=0.0, seed=seed)

    def variable_update_period(self) -> int:
        return self.config.variable_update_period

    def learner_steps_per_actor_step(self) -> float:
        """Each actor step pays for samples_per_insert sampled transitions."""
        return self.config.samples_per_insert / self.config.batch_size

    def min_actor_steps_before_learning(self) -> int:
        return self.config.min_replay_size

    def check_environment(self, environment_spec: "replay.EnvironmentSpec") -> None:
        envs.bounded_actions(environment_spec, "D4PG")
        self.config.value_range(environment_spec)
