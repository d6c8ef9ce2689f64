"""task environments: each task's own packages (a spec task's `requirements`), else the job's

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 11:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environment_id', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key('fk_tasks_environment_id', 'environments', ['environment_id'], ['id'])
    # Tasks from before ran with their job's environment.
    op.execute("UPDATE tasks SET environment_id = (SELECT jobs.environment_id FROM jobs WHERE jobs.id = tasks.job_id)")


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tasks_environment_id', type_='foreignkey')
        batch_op.drop_column('environment_id')
