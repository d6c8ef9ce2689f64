"""drop heartbeats: a row per beat was written and never read (liveness keeps the last-seen time on
the worker; what a beat says lives in memory, live.py)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 01:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_heartbeats_at', table_name='heartbeats')
    op.drop_index('ix_heartbeats_worker_id', table_name='heartbeats')
    op.drop_table('heartbeats')


def downgrade() -> None:
    op.create_table(
        'heartbeats',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('worker_id', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('running_tasks', sa.Integer(), nullable=False),
        sa.Column('memory_used_bytes', sa.BigInteger(), nullable=False),
        sa.Column('free_slots', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_heartbeats_worker_id', 'heartbeats', ['worker_id'])
    op.create_index('ix_heartbeats_at', 'heartbeats', ['at'])
