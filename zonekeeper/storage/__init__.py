"""Storage: the SQLAlchemy models, the database and its migrations, the row operations.

This package's ``__init__`` imports nothing: ``zonekeeper.start`` reads ``SCHEMA_HEAD``
before SQLAlchemy is loaded.
"""

# The newest migration; a test checks it against Alembic's head. Knowing it here lets a
# start on an up-to-date database skip importing Alembic at all (and, on SQLite, read its
# zones before importing SQLAlchemy: zonekeeper.start).
SCHEMA_HEAD = "0017"

# The DNS COOKIE server secret's row in ``server_secrets`` (services/secrets.py).
COOKIE_SECRET = "dns-cookie"
# A random value made once per database (``Database.stamp``, storage/db.py): the
# files kept beside a database at a stop name it (server/imagecache.py), so that they are
# not taken for another database's at the next start.
DATABASE_STAMP = "database-stamp"
