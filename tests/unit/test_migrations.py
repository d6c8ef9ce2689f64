from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from runsurge_master.db import Database
from runsurge_master.models import Base


def test_migrations_create_exactly_the_models(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    db.upgrade()  # idempotent
    assert {"users", "workers", "jobs", "tasks", "data_objects", "data_locations", "task_inputs",
            "task_outputs"} <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
