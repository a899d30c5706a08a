"""Quarter-hour rollups (services/billing/rollups.py): ticks added in any order and in any batches, with
redeliveries, add up per quarter hour to what the figures computed from all the ticks there are."""

from __future__ import annotations

import random

from services.billing.figures import ROLLUP_COLUMNS, Role, StreamPiece, Tier, UsageInputs, compute
from services.billing.rollups import BUCKET_MS, piece_deltas

NOW = 10**13


def _random_ticks(rng: random.Random) -> list[StreamPiece]:
    """Streams of consecutive ticks for a few uids, overlapping in time and across quarter hours."""
    pieces = []
    for stream in range(12):
        uid = f"u{stream % 3}"
        role = Role.SUBSCRIPTION if stream % 4 else Role.PUBLICATION
        start = rng.randrange(0, 3 * BUCKET_MS)
        for track in ("audio", "video"):
            at = start + (rng.randrange(0, 5_000) if track == "video" else 0)
            for _ in range(rng.randint(5, 60)):
                length = rng.randrange(1, 20_000)
                tier = Tier.AUDIO if track == "audio" else Tier(rng.randint(1, 4))
                pieces.append(StreamPiece(uid, f"s{stream}", role, tier, at, at + length))
                at += length
    return pieces


def _bucket_figures(pieces: list[StreamPiece], bucket: int) -> list[int]:
    figures = compute(UsageInputs(pieces=pieces), (bucket, bucket + BUCKET_MS), NOW)
    return [getattr(figures, name) for name in ROLLUP_COLUMNS]


def test_deltas_of_batches_in_any_order_add_up_to_the_figures_of_each_quarter_hour() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        ticks = _random_ticks(rng)
        delivered = ticks + rng.sample(ticks, len(ticks) // 3)
        rng.shuffle(delivered)
        stored: list[StreamPiece] = []
        seen: set[StreamPiece] = set()
        totals: dict[int, list[int]] = {}
        while delivered:
            size = rng.randint(1, 80)
            batch, delivered = delivered[:size], delivered[size:]
            new = list(dict.fromkeys(p for p in batch if p not in seen))
            for uid in {p.uid for p in new}:
                mine = [p for p in new if p.uid == uid]
                neighbours = [p for p in stored if p.uid == uid]
                for bucket, delta in piece_deltas(neighbours, mine).items():
                    row = totals.setdefault(bucket, [0] * len(ROLLUP_COLUMNS))
                    totals[bucket] = [a + b for a, b in zip(row, delta, strict=True)]
            stored.extend(new)
            seen.update(new)
        buckets = {
            b * BUCKET_MS for p in ticks for b in range(p.start_ms // BUCKET_MS, p.end_ms // BUCKET_MS + 1)
        }
        for bucket in sorted(buckets):
            assert totals.get(bucket, [0] * len(ROLLUP_COLUMNS)) == _bucket_figures(ticks, bucket), (
                seed,
                bucket,
            )
