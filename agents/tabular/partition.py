"""Which worker owns which states: a partition of the state space into disjoint blocks."""

from typing import Callable, List, Sequence

import numpy as np

PARTITIONS = ("auto", "contiguous", "taxi_rows")
_TAXI_ROWS = 5
_TAXI_STATES_PER_ROW = 100  # Taxi encodes a state as ((row * 5 + column) * 5 + passenger) * 4 + destination.


class Partition:
    """Disjoint blocks of states that together hold every state; `owner[s]` is the block of state s.

    Raises ValueError naming the state when a state is in no block or in two.
    """

    def __init__(self, blocks: Sequence[Sequence[int]], num_states: int):
        self.blocks: List[np.ndarray] = [np.asarray(block, np.int64).reshape(-1) for block in blocks]
        if not self.blocks:
            raise ValueError("a partition needs at least one block.")
        owner = np.full(num_states, -1, np.int64)
        for index, block in enumerate(self.blocks):
            outside = block[(block < 0) | (block >= num_states)]
            if outside.size:
                raise ValueError(
                    f"block {index} holds state {int(outside[0])}, outside the states 0..{num_states - 1}."
                )
            taken = block[owner[block] >= 0]
            if taken.size:
                state = int(taken[0])
                raise ValueError(
                    f"blocks {int(owner[state])} and {index} overlap (state {state} is in both): every state must "
                    "have exactly one owner, or two workers would update its row."
                )
            owner[block] = index
        orphans = np.flatnonzero(owner < 0)
        if orphans.size:
            raise ValueError(
                f"state {int(orphans[0])} is in no block ({orphans.size} states are): every state needs an owner, or "
                "no worker would ever learn its row."
            )
        self.owner = owner

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @classmethod
    def from_function(cls, block_of: Callable[[int], int], num_states: int, num_blocks: int) -> "Partition":
        """The partition that puts state s in block `block_of(s)`, one of 0..num_blocks-1."""
        owners = np.array([int(block_of(s)) for s in range(num_states)], np.int64)
        outside = np.flatnonzero((owners < 0) | (owners >= num_blocks))
        if outside.size:
            state = int(outside[0])
            raise ValueError(
                f"the partition function puts state {state} in block {int(owners[state])}, outside the blocks "
                f"0..{num_blocks - 1}: a state outside every block would have no owner."
            )
        return cls([np.flatnonzero(owners == k) for k in range(num_blocks)], num_states)

    @classmethod
    def contiguous(cls, num_states: int, num_blocks: int) -> "Partition":
        """Blocks of consecutive state indices, as equal as can be."""
        if not 1 <= num_blocks <= num_states:
            raise ValueError(f"cannot split {num_states} states into {num_blocks} blocks (need 1..{num_states}).")
        return cls(np.array_split(np.arange(num_states), num_blocks), num_states)


def taxi_row_block(num_blocks: int) -> Callable[[int], int]:
    """Taxi's partition function: states by the taxi's row, rows grouped into `num_blocks` contiguous bands (with
    5 blocks, one row each: a worker's segment ends when the taxi drives north or south out of its row)."""
    return lambda state: (state // _TAXI_STATES_PER_ROW) * num_blocks // _TAXI_ROWS


def make_partition(name: str, env_name: str, num_states: int, num_blocks: int) -> Partition:
    """The partition `name` (one of PARTITIONS) of an environment's states; "auto" is taxi_rows for Taxi (with
    at most 5 blocks) and contiguous otherwise."""
    is_taxi = env_name.startswith("Taxi-")
    if name == "auto":
        name = "taxi_rows" if is_taxi and num_blocks <= _TAXI_ROWS else "contiguous"
    if name == "contiguous":
        return Partition.contiguous(num_states, num_blocks)
    if name == "taxi_rows":
        if not is_taxi or num_states != _TAXI_ROWS * _TAXI_STATES_PER_ROW:
            raise ValueError(f"partition=taxi_rows is for Taxi's 500 states, not {env_name}; use contiguous.")
        if num_blocks > _TAXI_ROWS:
            raise ValueError(f"partition=taxi_rows makes at most {_TAXI_ROWS} blocks (got num_workers={num_blocks}).")
        return Partition.from_function(taxi_row_block(num_blocks), num_states, num_blocks)
    raise ValueError(f"unknown partition {name!r}; use one of {', '.join(PARTITIONS)}.")
