"""Recipe: an Alembic ``env.py`` for projects that build the engine in code, not from the ini.

Copy this file over ``migrations/env.py``. It is the ``env.py`` that ``alembic init`` writes,
except that the engine comes from your application's settings (here the ``DATABASE_URL``
environment variable, a URL *without* password and without ``?plugin=rds_iam``) and gets
IAM authentication from one call, ``sqlalchemy_rds_iam.attach(engine)``: every connection
then logs in with a fresh IAM token over verified TLS. If your application already has an
engine (``from myapp.db import engine``) built with the plugin or attach(), use that
engine instead of creating one here.

Nothing goes through ConfigParser, so the ``%%`` rule of alembic.ini does not apply.
"""

import os
from logging.config import fileConfig

import sqlalchemy_rds_iam
from alembic import context
from sqlalchemy import create_engine, pool

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
target_metadata = None


def database_url() -> str:
    """Your application's setting, e.g. postgresql+psycopg2://iamuser@mydb....rds.amazonaws.com/app"""
    return os.environ["DATABASE_URL"]


def iam_options() -> dict[str, str]:
    """Plugin options from the environment; all optional on AWS (see the README's table)."""
    options = {}
    if os.environ.get("AWS_REGION"):  # else: from the RDS hostname or AWS_DEFAULT_REGION
        options["aws_region"] = os.environ["AWS_REGION"]
    if os.environ.get("IAM_CA_BUNDLE"):  # else: the RDS CA bundle shipped with the package
        options["iam_ca_bundle"] = os.environ["IAM_CA_BUNDLE"]
    return options


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: SQL to stdout, no connection, no token."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode, on an engine with IAM authentication attached."""
    connectable = create_engine(database_url(), poolclass=pool.NullPool)
    sqlalchemy_rds_iam.attach(connectable, **iam_options())

    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
