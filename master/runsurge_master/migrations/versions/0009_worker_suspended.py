"""worker suspended: why a worker takes no new work (its owner's machine is busy, outside its
schedule, stopping), from its heartbeat

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('suspended')
