"""The upload body pipe: the event loop pushes chunks, a thread reads them; bytes and
order are kept, memory stays bounded, and either side stopping releases the other."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from depository.service._upload import _MAX_PARTS, _PIECE_COST, BodyPipe, UploadAborted


def _chunks(seed: int, total: int) -> list[bytes]:
    rng = random.Random(seed)
    out, n = [], 0
    while n < total:
        k = rng.choice([1, 17, 4096, 65536, 256000, 300_000])
        out.append(rng.randbytes(k))
        n += k
    return out


@pytest.mark.parametrize("max_bytes,wake_at", [(8 << 20, 1 << 20), (300_000, 100_000),
                                               (1, 1)])
def test_bytes_and_order_kept_with_backpressure(max_bytes: int, wake_at: int) -> None:
    chunks = _chunks(max_bytes, 12 << 20)
    got: list[bytes] = []
    peak = [0]

    async def main() -> None:
        pipe = BodyPipe(asyncio.get_running_loop(), max_bytes=max_bytes, wake_at=wake_at)

        def reader() -> None:
            while parts := pipe.read_parts(1 << 20):
                assert len(parts) <= _MAX_PARTS
                got.extend(parts)
            pipe.consumer_done()

        th = threading.Thread(target=reader)
        th.start()
        for c in chunks:
            assert await pipe.push(c)
            peak[0] = max(peak[0], pipe._queued)
        pipe.finish()
        await asyncio.to_thread(th.join)

    asyncio.run(main())
    assert b"".join(got) == b"".join(chunks)
    assert peak[0] <= max_bytes + 300_000 + _PIECE_COST


def test_read_returns_exact_sizes() -> None:
    data = random.Random(5).randbytes(3_000_000)

    async def main() -> bytes:
        pipe = BodyPipe(asyncio.get_running_loop(), wake_at=1)
        for i in range(0, len(data), 256000):
            assert await pipe.push(data[i:i + 256000])
        pipe.finish()
        out = []
        while piece := pipe.read(100_000):
            assert len(piece) <= 100_000
            out.append(piece)
        return b"".join(out)

    assert asyncio.run(main()) == data


def test_fail_wakes_a_waiting_reader() -> None:
    async def main() -> BaseException | None:
        pipe = BodyPipe(asyncio.get_running_loop())
        err: list[BaseException] = []

        def reader() -> None:
            try:
                pipe.read_parts(1 << 20)
            except UploadAborted as exc:
                err.append(exc)

        th = threading.Thread(target=reader)
        th.start()
        await pipe.push(b"x" * 10)  # below wake_at: the reader keeps waiting
        await asyncio.sleep(0.05)
        pipe.fail(RuntimeError("client went away"))
        await asyncio.to_thread(th.join, 5)
        return err[0] if err else None

    assert isinstance(asyncio.run(main()), UploadAborted)


def test_consumer_done_releases_a_waiting_producer() -> None:
    async def main() -> bool:
        pipe = BodyPipe(asyncio.get_running_loop(), max_bytes=1000, wake_at=1000)
        assert await pipe.push(b"x" * 1000)
        waiting = asyncio.ensure_future(pipe.push(b"y"))  # full: waits for room
        await asyncio.sleep(0.02)
        assert not waiting.done()
        await asyncio.to_thread(pipe.consumer_done)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()) is False


def test_tiny_pieces_are_bounded() -> None:
    async def main() -> list[list[bytes]]:
        pipe = BodyPipe(asyncio.get_running_loop(), max_bytes=1 << 20, wake_at=1)
        n = 0
        while pipe.try_push(b"a"):
            n += 1
        assert n < (1 << 20) // _PIECE_COST + 2  # the bound counts pieces, not bytes only
        pipe.finish()
        batches = []
        while parts := pipe.read_parts(1 << 20):
            batches.append(parts)
        return batches

    batches = asyncio.run(main())
    assert all(len(b) <= _MAX_PARTS for b in batches)
