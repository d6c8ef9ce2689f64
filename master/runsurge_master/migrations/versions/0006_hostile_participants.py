"""hostile participants: task faults per worker (never offered again; the budget counts workers), benching,
the uploads of each run (only its results and logs, each once)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'task_faults',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('task_id', sa.String(length=32), nullable=False),
        sa.Column('worker_id', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
        sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'worker_id'))
    with op.batch_alter_table('task_faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_faults_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_faults_worker_id'), ['worker_id'], unique=False)
    op.create_table(
        'task_uploads',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('task_id', sa.String(length=32), nullable=False),
        sa.Column('worker_id', sa.String(length=32), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('data_id', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
        sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task_id', 'worker_id', 'attempt', 'data_id'))
    with op.batch_alter_table('task_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_uploads_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_uploads_worker_id'), ['worker_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_uploads_data_id'), ['data_id'], unique=False)
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fault_streak', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('benched_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('bench_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('bench_reason')
        batch_op.drop_column('benched_until')
        batch_op.drop_column('fault_streak')
    with op.batch_alter_table('task_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_uploads_data_id'))
        batch_op.drop_index(batch_op.f('ix_task_uploads_worker_id'))
        batch_op.drop_index(batch_op.f('ix_task_uploads_task_id'))
    op.drop_table('task_uploads')
    with op.batch_alter_table('task_faults', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_faults_worker_id'))
        batch_op.drop_index(batch_op.f('ix_task_faults_task_id'))
    op.drop_table('task_faults')
