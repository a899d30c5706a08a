"""recorder jobs, files and outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recorder_jobs",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("biz_name", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("record_third_id", sa.String(255), nullable=False),
        sa.Column("record_param_json", sa.Text(), nullable=False),
        sa.Column("folder", sa.String(1024), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("event_code", sa.Integer(), nullable=False),
        sa.Column("failure_code", sa.Integer(), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_recorder_jobs_room_id", "recorder_jobs", ["room_id"])
    op.create_index("ix_recorder_jobs_state", "recorder_jobs", ["state"])
    op.create_table(
        "recorder_files",
        sa.Column("record_id", sa.String(64), sa.ForeignKey("recorder_jobs.record_id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("uid", sa.String(128), nullable=False),
        sa.Column("video_codec", sa.String(32), nullable=False),
        sa.Column("audio_codec", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("video_packets", sa.BigInteger(), nullable=False),
        sa.Column("audio_packets", sa.BigInteger(), nullable=False),
        sa.Column("first_frame_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "recorder_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("event_key", sa.String(256), nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("traceparent", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recorder_outbox")
    op.drop_table("recorder_files")
    op.drop_index("ix_recorder_jobs_state", "recorder_jobs")
    op.drop_index("ix_recorder_jobs_room_id", "recorder_jobs")
    op.drop_table("recorder_jobs")
