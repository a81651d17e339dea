"""A seeded, resumable cursor over the training problems: epoch after epoch, each in its own shuffled order.

The state is one integer (problems handed out so far), so a restored cursor continues exactly where
the saved one stopped, whatever the world size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class DataCursor(Generic[T]):
    def __init__(self, items: Sequence[T], seed: int) -> None:
        if not items:
            raise ValueError("the data cursor needs at least one item")
        self.items = list(items)
        self.seed = seed
        self.position = 0
        self._epoch = -1
        self._order: list[int] = []

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.items))
        if epoch != self._epoch:
            self._order = list(range(len(self.items)))
            random.Random(f"hipo-cursor|{self.seed}|{epoch}").shuffle(self._order)
            self._epoch = epoch
        return self._order[offset]

    def take(self, n: int) -> list[T]:
        """The next ``n`` items (across epoch boundaries)."""
        out = [self.items[self._index(self.position + i)] for i in range(n)]
        self.position += n
        return out

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "seed": self.seed, "size": len(self.items)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed or state["size"] != len(self.items):
            raise ValueError(
                f"data cursor saved for seed {state['seed']} over {state['size']} items cannot resume "
                f"seed {self.seed} over {len(self.items)} items"
            )
        self.position = int(state["position"])
