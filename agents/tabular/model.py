"""The transition table a toy-text environment carries (`env.unwrapped.P`) as arrays, and the exact answers it
gives: Q* by value iteration, and the expected return of any policy from every start state."""

import dataclasses

import gymnasium
import numpy as np

# Value iteration stops once no Q value moves by more than this.
_VALUE_TOLERANCE = 1e-12
_MAX_SWEEPS = 100_000
# The horizon of an environment without a time limit (CliffWalking): for evaluation and a learner's longest segment.
UNLIMITED_HORIZON = 1000
# Q values this close to max Q*(s, .) count as optimal actions (ties, e.g. Taxi's equally short routes).
_OPTIMAL_ACTION_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class TabularModel:
    """An environment's dynamics: for state s and action a, outcome i happens with probability
    `probabilities[s, a, i]`, gives `rewards[s, a, i]`, leads to `next_states[s, a, i]` and ends the episode
    when `terminal[s, a, i]` (outcomes are padded with probability 0 to the largest count).

    `initial` is the start-state distribution; `time_limit` the episode length after which the environment
    truncates (UNLIMITED_HORIZON for one without a limit).
    """

    env_name: str
    next_states: np.ndarray  # [S, A, O] int
    probabilities: np.ndarray  # [S, A, O]
    rewards: np.ndarray  # [S, A, O]
    terminal: np.ndarray  # [S, A, O] bool
    initial: np.ndarray  # [S]
    time_limit: int

    @property
    def num_states(self) -> int:
        return self.next_states.shape[0]

    @property
    def num_actions(self) -> int:
        return self.next_states.shape[1]

    @property
    def start_states(self) -> np.ndarray:
        return np.flatnonzero(self.initial > 0)

    @property
    def expected_rewards(self) -> np.ndarray:
        """[S, A]: the mean reward of one step."""
        return (self.probabilities * self.rewards).sum(axis=2)

    @property
    def continuing(self) -> np.ndarray:
        """[S, A, O]: the probability of each outcome that does not end the episode."""
        return self.probabilities * ~self.terminal

    @property
    def deterministic(self) -> bool:
        """Whether every action has one outcome."""
        return bool(((self.probabilities == 0) | (self.probabilities == 1)).all())

    @property
    def absorbing_states(self) -> np.ndarray:
        """States where every action ends the episode at once with nothing gained (FrozenLake's holes and goal):
        no episode passes through them, so no learner needs to start there."""
        ends_at_once = (self.terminal | (self.probabilities == 0)).all(axis=2)
        no_reward = (self.probabilities * np.abs(self.rewards)).sum(axis=2) == 0
        return np.flatnonzero((ends_at_once & no_reward).all(axis=1))


def make_model(env_name: str, **kwargs) -> TabularModel:
    """The model of gymnasium environment `env_name` (made with `kwargs`, e.g. map_name="8x8").

    Raises ValueError naming the problem when the environment has no transition table or no discrete spaces.
    """
    try:
        env = gymnasium.make(env_name, **kwargs)
    except gymnasium.error.Error as error:
        raise ValueError(f"cannot make environment {env_name!r}: {error}") from None
    try:
        return model_of(env, env_name)
    finally:
        env.close()


def model_of(env: gymnasium.Env, env_name: str = "") -> TabularModel:
    """The model of an environment that exposes its transition table as `env.unwrapped.P` (gymnasium's
    toy-text environments: FrozenLake, Taxi, CliffWalking)."""
    name = env_name or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
    unwrapped = env.unwrapped
    table = getattr(unwrapped, "P", None)
    discrete = isinstance(env.observation_space, gymnasium.spaces.Discrete) and isinstance(
        env.action_space, gymnasium.spaces.Discrete
    )
    if table is None or not discrete:
        raise ValueError(
            f"{name} has no transition table (env.unwrapped.P) over discrete states and actions; tabular "
            "Q-learning and its exact oracle need one: use FrozenLake-v1, Taxi-v4 or CliffWalking-v1."
        )
    num_states, num_actions = int(env.observation_space.n), int(env.action_space.n)
    width = max(len(table[s][a]) for s in range(num_states) for a in range(num_actions))
    shape = (num_states, num_actions, width)
    next_states = np.zeros(shape, np.int64)
    probabilities = np.zeros(shape)
    rewards = np.zeros(shape)
    terminal = np.ones(shape, bool)
    for s in range(num_states):
        for a in range(num_actions):
            for i, (probability, next_state, reward, done) in enumerate(table[s][a]):
                next_states[s, a, i] = next_state
                probabilities[s, a, i] = probability
                rewards[s, a, i] = reward
                terminal[s, a, i] = done
    initial = getattr(unwrapped, "initial_state_distrib", None)
    if initial is None:  # CliffWalking keeps one start state.
        initial = np.zeros(num_states)
        initial[unwrapped.start_state_index] = 1.0
    time_limit = (env.spec.max_episode_steps if env.spec is not None else None) or UNLIMITED_HORIZON
    return TabularModel(
        name,
        next_states,
        probabilities,
        rewards,
        terminal,
        np.asarray(initial, float) / np.sum(initial),
        time_limit,
    )


@dataclasses.dataclass(frozen=True)
class Solution:
    """What value iteration knows about an environment: Q*, the greedy policy of Q*, and that policy's
    expected (undiscounted) return from every state within the time limit."""

    q: np.ndarray  # [S, A]
    policy: np.ndarray  # [S]
    returns: np.ndarray  # [S]
    discount: float

    @property
    def values(self) -> np.ndarray:
        """V*(s) = max_a Q*(s, a), the discounted optimal value."""
        return self.q.max(axis=1)


def backup(model: TabularModel, values: np.ndarray, discount: float) -> np.ndarray:
    """[S, A]: one Bellman backup, r + discount * V(s') in expectation (no bootstrap past termination)."""
    return model.expected_rewards + discount * (model.continuing * values[model.next_states]).sum(axis=2)


def value_iteration(model: TabularModel, discount: float = 0.99) -> Solution:
    """Q* of `model` with `discount`, its greedy policy, and that policy's expected return from every state."""
    if not 0 <= discount < 1:
        raise ValueError(f"discount must be in [0, 1) for value iteration to converge (got {discount}).")
    q = np.zeros((model.num_states, model.num_actions))
    for _ in range(_MAX_SWEEPS):
        new_q = backup(model, q.max(axis=1), discount)
        change = np.abs(new_q - q).max()
        q = new_q
        if change <= _VALUE_TOLERANCE:
            break
    policy = greedy_policy(q)
    return Solution(q, policy, policy_returns(model, policy), discount)


def greedy_policy(q: np.ndarray) -> np.ndarray:
    """[S]: the first action of highest value in every state."""
    return np.argmax(q, axis=1)


def policy_returns(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """[S]: the exact expected undiscounted return of `policy` from every state, within the time limit (an
    episode the limit truncates counts the rewards before it)."""
    states = np.arange(model.num_states)
    rewards = model.expected_rewards[states, policy]
    continuing = model.continuing[states, policy]  # [S, O]
    next_states = model.next_states[states, policy]
    returns = np.zeros(model.num_states)
    for _ in range(model.time_limit):
        returns = rewards + (continuing * returns[next_states]).sum(axis=1)
    return returns


def start_return(model: TabularModel, returns: np.ndarray) -> float:
    """The expected return of an episode: `returns` weighted by the start-state distribution."""
    return float(model.initial @ returns)


def is_optimal(model: TabularModel, solution: Solution, policy: np.ndarray) -> bool:
    """Whether `policy` is optimal (discounted, as Q*) from every start state: it picks an optimal action in every
    state it can reach from one. (A suboptimal action in a reachable state would lower the value of the start
    states that reach it, so this is exact.)"""
    q_star = solution.q
    optimal_actions = q_star >= q_star.max(axis=1, keepdims=True) - _OPTIMAL_ACTION_TOLERANCE * max(
        1.0, float(np.abs(q_star).max())
    )
    states = np.arange(model.num_states)
    chosen_ok = optimal_actions[states, policy]
    successors = model.next_states[states, policy]  # [S, O]
    reachable_next = model.continuing[states, policy] > 0
    reached = np.zeros(model.num_states, bool)
    frontier = model.start_states
    while frontier.size:
        reached[frontier] = True
        if not chosen_ok[frontier].all():
            return False
        following = successors[frontier][reachable_next[frontier]]
        frontier = np.unique(following[~reached[following]])
    return True
