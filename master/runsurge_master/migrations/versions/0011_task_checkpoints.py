"""task checkpoints: when a task's worker saved its run to resume it (kept for that worker during
checkpoint_grace_s), and the restore time of a resumed run

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpointed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('restore_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('restore_s')
        batch_op.drop_column('checkpointed_at')
