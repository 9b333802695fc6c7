"""AWS's "connect a Lambda function to RDS MySQL with IAM" sample, on sqlalchemy-rds-iam.

AWS's guide builds ``boto3.client("rds")``, signs a token and opens a new connection in
every invocation. Here the engine is built once, at init (module import), and every
invocation borrows its pooled connection through an ORM Session; the plugin signs a token
only when a new connection is opened, and reuses it for up to 10 minutes. With PyMySQL it
also turns on the ``mysql_clear_password`` exchange that RDS MySQL's IAM login uses, and
only over verified TLS.

Environment (set by the SAM template): ``DBEndPoint``, ``DatabaseName``, ``DBUserName``.
Lambda sets ``AWS_REGION`` and the role's credentials itself. Local runs only:
``DBPort`` (default 3306), ``DBCaBundle`` (default: the RDS CA bundle shipped with the
package) and ``DBPool=null`` (see README.md, "Pool settings").
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import URL, create_engine, text
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

# Registers plugin=rds_iam with SQLAlchemy, which otherwise scans every installed
# package's entry points for it at create_engine (~2 ms for 15 packages).
import sqlalchemy_rds_iam  # noqa: F401

_query = {"plugin": "rds_iam"}  # every new connection logs in with a fresh IAM token
if os.environ.get("DBCaBundle"):
    _query["iam_ca_bundle"] = os.environ["DBCaBundle"]

url = URL.create(
    "mysql+pymysql",
    username=os.environ["DBUserName"],  # no password: the plugin supplies the token
    host=os.environ["DBEndPoint"],
    port=int(os.environ.get("DBPort", "3306")),
    database=os.environ["DatabaseName"],
    query=_query,
)

if os.environ.get("DBPool") == "null":
    # RDS Proxy with pinned sessions: close the connection after each invocation so a
    # frozen sandbox never holds a pinned database connection.
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
else:
    engine = create_engine(
        url,
        # One invocation at a time per execution environment: one connection is enough.
        pool_size=1,
        max_overflow=0,
        # The socket may have died during a freeze (wait_timeout, proxy idle timeout,
        # failover): test it at checkout and reconnect, with a fresh token if needed.
        pool_pre_ping=True,
        # Checked at checkout against the wall clock, so it works across freezes too;
        # below RDS Proxy's IdleClientTimeout (1800 s) and the server's idle timeout.
        # Unrelated to the 15-minute token lifetime: an open connection stays logged in.
        pool_recycle=900,
        # Fail fast rather than hang until the function's timeout.
        connect_args={"connect_timeout": 5},
    )

Session = sessionmaker(engine)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the current database's name, as AWS's sample does; errors fail the invocation."""
    with Session() as session:
        database = session.execute(text("select database();")).scalar_one()
    return {"statusCode": 200, "database": database}
