"""A stream of ready-made batches as a ``torch.utils.data.IterableDataset``.

The batches come from a function of their index (``make_batch(i)``), so the
stream is the same however many DataLoader workers make it: worker ``w`` of
``k`` makes batches ``w, w + k, w + 2k, ...`` and the loader hands them back
in index order. Use ``DataLoader(stream, batch_size=None, num_workers=k)``:
the batches are already collated.

    >>> stream = BatchStream(lambda i: i * i, stop=4)
    >>> list(stream)
    [0, 1, 4, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from torch.utils.data import IterableDataset, get_worker_info

T = TypeVar("T")


class BatchStream(IterableDataset, Generic[T]):
    def __init__(self, make_batch: Callable[[int], T], start: int = 0, stop: int | None = None):
        #: Must be picklable when workers are started with `spawn`.
        self.make_batch = make_batch
        self.start = start
        #: One past the last index; None for an endless stream.
        self.stop = stop

    def __iter__(self) -> Iterator[T]:
        info = get_worker_info()
        index, step = (self.start, 1) if info is None else (self.start + info.id, info.num_workers)
        while self.stop is None or index < self.stop:
            yield self.make_batch(index)
            index += step

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless BatchStream has no length")
        return max(0, self.stop - self.start)
