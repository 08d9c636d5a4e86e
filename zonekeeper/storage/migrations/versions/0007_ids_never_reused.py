"""acl_rules and zones: ids never reused (SQLite AUTOINCREMENT)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00

Without AUTOINCREMENT, SQLite gives a new row the largest id in the table plus one, so
deleting the newest access rule and adding another hands out its id again: a log line or
an API reply naming "acl 7" no longer says which rule. The same holds for zones, whose ids
travel in PostgreSQL notifications and in every snapshot (a transfer still reading a
deleted zone's journal by id would read the new zone's). With AUTOINCREMENT, SQLite keeps
the largest id ever given in ``sqlite_sequence`` and never goes below it.

Tables are recreated with their rows (batch "move and copy"); ``Database.upgrade`` runs
migrations with foreign-key enforcement off on SQLite, so dropping the old ``zones`` table
cascades nothing, then checks every reference. The other tables whose ids appear anywhere
are fine already: tokens have random text ids, users got AUTOINCREMENT in 0004, and peers
and TSIG keys are known by name in the API and logs (their integer ids never leave the
database). PostgreSQL ids come from sequences, which never hand out a value twice: nothing
to do there.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("acl_rules", "zones")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
