"""task usage: CPU and memory over each run of a task, from its worker's metering samples

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'task_usage',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('task_id', sa.String(length=32), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.String(length=32), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('samples', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['tasks.id']),
        sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'attempt'),
    )
    op.create_index('ix_task_usage_task_id', 'task_usage', ['task_id'], unique=False)
    op.create_index('ix_task_usage_worker', 'task_usage', ['worker_id', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_task_usage_worker', table_name='task_usage')
    op.drop_index('ix_task_usage_task_id', table_name='task_usage')
    op.drop_table('task_usage')
