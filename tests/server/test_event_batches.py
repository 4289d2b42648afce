"""Events published from many threads reach an event-stream response all, in each thread's order,
in fewer wake-ups of the loop than events when they come in a burst."""

import asyncio
import threading

from batchai_jupyter.server.event_batches import EventBatches


def test_every_event_arrives_in_order_in_batches():
    async def main() -> tuple[list[dict], int]:
        batches = EventBatches(asyncio.get_running_loop())
        wakeups = 0
        original = batches._loop.call_soon_threadsafe

        def counted(*args):
            nonlocal wakeups
            wakeups += 1
            return original(*args)

        batches._loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        publishers = [
            threading.Thread(target=lambda t=t: [batches.put({"thread": t, "n": n}) for n in range(2000)])
            for t in range(4)
        ]
        for publisher in publishers:
            publisher.start()
        received: list[dict] = []
        while len(received) < 8000:
            received += await batches.take(10.0)
        for publisher in publishers:
            publisher.join()
        assert await batches.take(0.05) == []  # nothing more: the timeout gives an empty batch
        return received, wakeups

    received, wakeups = asyncio.run(main())
    for thread in range(4):
        assert [e["n"] for e in received if e["thread"] == thread] == list(range(2000))
    assert wakeups < 8000, wakeups


def test_an_event_after_a_batch_was_taken_wakes_the_loop_again():
    async def main() -> list[list[dict]]:
        batches = EventBatches(asyncio.get_running_loop())
        taken = []
        for n in range(3):
            threading.Thread(target=batches.put, args=({"n": n},)).start()
            taken.append(await batches.take(10.0))
        return taken

    assert asyncio.run(main()) == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
