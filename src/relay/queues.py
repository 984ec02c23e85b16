"""Sending due work: queues in parallel (bounded), each queue strictly in order, stopping at its first setback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")


async def drain_in_order(
    queues: Iterable[list[Item]],
    *,
    concurrency: int,
    send: Callable[[Item], Awaitable[str | None]],
    keep_going: Callable[[str | None], bool],
    on_error: Callable[[Item, Exception], None],
) -> None:
    """Run `send` over each queue's rows in order; a queue stops when `keep_going` says no or `send` raises.

    Order within a queue keeps one receiver's messages in event order; stopping at a setback means a
    slow or broken receiver costs one attempt per run, and its remaining rows wait for a later run.
    """
    gate = asyncio.Semaphore(concurrency)

    async def drain(queue: list[Item]) -> None:
        async with gate:
            for row in queue:
                try:
                    status = await send(row)
                except Exception as error:
                    on_error(row, error)
                    return
                if not keep_going(status):
                    return

    await asyncio.gather(*(drain(queue) for queue in queues))
