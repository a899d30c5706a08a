"""quarter-hour rollups of the figures that come from ticks, each app's longest tick, and the index on
(biz_name, uid, start_ms) that finds a tick's neighbours; filled from the ticks already stored

Revision ID: 0003
Revises: 0002
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from services.billing.figures import ROLLUP_COLUMNS, StreamPiece
from services.billing.rollups import piece_deltas

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_rollups",
        sa.Column("biz_name", sa.String(128), primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger(), primary_key=True),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in ROLLUP_COLUMNS],
    )
    with op.batch_alter_table("billing_apps") as batch:
        batch.add_column(sa.Column("max_tick_ms", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_billing_ticks_biz_uid_start", "billing_ticks", ["biz_name", "uid", "start_ms"])
    _fill()


def _fill() -> None:
    """The rollups of the ticks stored before them: each uid's ticks, all new to an empty rollup."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT biz_name, uid, stream_id, role, tier, start_ms, end_ms FROM billing_ticks "
            "ORDER BY biz_name, uid"
        )
    )
    pieces: dict[tuple[str, str], list[StreamPiece]] = defaultdict(list)
    for biz_name, uid, *columns in rows:
        pieces[(biz_name, uid)].append(StreamPiece.stored(uid, *columns))
    totals: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * len(ROLLUP_COLUMNS))
    longest: dict[str, int] = defaultdict(int)
    for (biz_name, _), stored in pieces.items():
        for bucket, delta in piece_deltas([], stored).items():
            row = totals[(biz_name, bucket)]
            for index, value in enumerate(delta):
                row[index] += value
        longest[biz_name] = max(longest[biz_name], *(p.end_ms - p.start_ms for p in stored))
    rollups = sa.table("billing_rollups", *(sa.column(n) for n in ("biz_name", "bucket_ms", *ROLLUP_COLUMNS)))
    if totals:
        connection.execute(
            rollups.insert(),
            [
                {"biz_name": biz, "bucket_ms": bucket, **dict(zip(ROLLUP_COLUMNS, values, strict=True))}
                for (biz, bucket), values in totals.items()
            ],
        )
    apps = sa.table("billing_apps", sa.column("biz_name"), sa.column("max_tick_ms"))
    for biz_name, length in longest.items():
        connection.execute(apps.update().where(apps.c.biz_name == biz_name).values(max_tick_ms=length))


def downgrade() -> None:
    op.drop_index("ix_billing_ticks_biz_uid_start", "billing_ticks")
    with op.batch_alter_table("billing_apps") as batch:
        batch.drop_column("max_tick_ms")
    op.drop_table("billing_rollups")
