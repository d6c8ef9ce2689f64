"""environments: a job's resolved wheels (environments.py) and the resolution cache

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('environments',
                    sa.Column('id', sa.String(length=64), nullable=False),
                    sa.Column('requirements', sa.Text(), nullable=False),
                    sa.Column('lock', sa.Text(), nullable=False),
                    sa.Column('wheels', sa.JSON(), nullable=False),
                    sa.Column('size', sa.BigInteger(), nullable=False),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_table('environment_resolutions',
                    sa.Column('key', sa.String(length=64), nullable=False),
                    sa.Column('environment_id', sa.String(length=64), nullable=False),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['environment_id'], ['environments.id']),
                    sa.PrimaryKeyConstraint('key'))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environment_id', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key('fk_jobs_environment_id', 'environments', ['environment_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_jobs_environment_id', type_='foreignkey')
        batch_op.drop_column('environment_id')
    op.drop_table('environment_resolutions')
    op.drop_table('environments')
