"""How long the embedded broker (Tansu) holds a record from a consumer, by `fetch_max_wait_ms`.

    .venv/bin/python bench/kafka_fetch_wait.py [--records 40] [WAIT_MS ...]   (default 5 20 100 500)

For each wait: a consumer with that `fetch_max_wait_ms` (and aiokafka's `fetch_min_bytes` 1) waits on a
topic; one record is produced at random moments 50-300 ms apart, and the time from the produce's
acknowledgement to the consumer having the record is measured. A broker that answers a fetch as soon as
`fetch_min_bytes` are there gives about the same at every wait; one that looks at its log now and then
gives more the longer the wait. Prints the distribution per wait (ms); the webhook dispatcher's
`MAX_WAIT_MS` was chosen from it (docs/decisions.md). Beside it, what the wait costs an idle consumer: one
subscribed, as the dispatcher is, to every topic of the catalogue but the dispatcher's own (3 partitions
each), with nothing coming, its CPU time (`time.process_time`, this process) per second over `IDLE_S`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from services.core.embedded_broker import EmbeddedBroker
from services.core.topics import Topic, ensure_topics

IDLE_S = 8.0


async def held(bootstrap: str, wait_ms: int, records: int) -> dict[str, float]:
    topic = f"fetch-wait-{wait_ms}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"fetch-wait-{wait_ms}",
        fetch_max_wait_ms=wait_ms,
        auto_offset_reset="latest",
    )
    try:
        await producer.send_and_wait(topic, b"create the topic")
        await consumer.start()
        await asyncio.sleep(1.5)  # joined and fetching
        latencies = []
        for _ in range(records):
            await asyncio.sleep(random.uniform(0.05, 0.3))
            await producer.send_and_wait(topic, b"x")
            acknowledged = time.monotonic()
            await consumer.getone()
            latencies.append((time.monotonic() - acknowledged) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    latencies.sort()
    return {
        "min": round(latencies[0], 1),
        "p50": round(statistics.median(latencies), 1),
        "p90": round(latencies[int(0.9 * len(latencies))], 1),
        "max": round(latencies[-1], 1),
    }


async def idle_cores(bootstrap: str, wait_ms: int) -> float:
    """CPU an idle consumer of the dispatcher's topics spends per second, in cores."""
    topics = [topic.value for topic in Topic if topic is not Topic.WEBHOOK]
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=f"fetch-wait-idle-{wait_ms}", fetch_max_wait_ms=wait_ms
    )
    await consumer.start()
    try:
        await asyncio.sleep(3.0)  # joined and fetching
        reading = asyncio.create_task(consumer.getmany(timeout_ms=int(IDLE_S * 2000)))
        started = time.process_time()
        await asyncio.sleep(IDLE_S)
        spent = time.process_time() - started
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    finally:
        await consumer.stop()
    return round(spent / IDLE_S, 4)


async def main(waits: list[int], records: int) -> None:
    broker = EmbeddedBroker()
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=3)
        for wait_ms in waits:
            result = await held(broker.bootstrap_servers, wait_ms, records)
            cores = await idle_cores(broker.bootstrap_servers, wait_ms)
            print(
                json.dumps(
                    {
                        "fetch_max_wait_ms": wait_ms,
                        "acknowledged_to_consumed_ms": result,
                        "idle_consumer_cores": cores,
                    }
                )
            )
    finally:
        broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("waits", type=int, nargs="*", default=[5, 20, 100, 500])
    args = parser.parse_args()
    asyncio.run(main(args.waits, args.records))
