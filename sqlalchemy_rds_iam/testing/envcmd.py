"""``sqlalchemy-rds-iam emulator env``: shell ``export`` lines that point code at the emulator.

``eval "$(sqlalchemy-rds-iam emulator env)"`` gives the shell the emulator's throwaway AWS
identity, its region, the trust-store override that makes the default trust stores verify
its stand-in certificates, and one URL per server. The URLs name the emulator's
real-looking AWS hostnames with ``?plugin=rds_iam`` alone, so code written for RDS (region
from the hostname, trust store picked by the library) runs against it unchanged.
"""

from __future__ import annotations

from sqlalchemy_rds_iam.testing.info import EmulatorInfo

__all__ = ["AWS_VARIABLES_CLEARED", "URL_VARIABLES", "env_lines", "env_variables"]

#: Environment variable -> the topology endpoint whose URL it holds (when that server runs).
URL_VARIABLES = {
    "RDS_IAM_POSTGRESQL_URL": "postgresql-instance",
    "RDS_IAM_MYSQL_URL": "mysql-instance",
    "RDS_IAM_PROXY_URL": "proxy",
}

#: Unset, so that what the shell held before cannot mix with the throwaway identity (a
#: session token of real credentials would be signed into every token).
AWS_VARIABLES_CLEARED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def env_variables(info: EmulatorInfo, identity: str = "primary") -> dict[str, str]:
    """The variables ``emulator env`` exports, in order."""
    env = dict(info.aws_env(identity))
    env.update(info.trust_store_env())
    for variable, key in URL_VARIABLES.items():
        endpoint = info.topology.get(key)
        if endpoint is not None:
            env[variable] = endpoint.url()
    return env


def env_lines(info: EmulatorInfo, identity: str = "primary") -> list[str]:
    """``unset``/``export`` lines for ``eval``; every value shell-quoted."""
    import shlex

    env = env_variables(info, identity)
    cleared = [name for name in AWS_VARIABLES_CLEARED if name not in env]
    lines = [
        f"# sqlalchemy-rds-iam emulator in {info.state_dir!r}: a throwaway identity, "
        "not AWS credentials"
    ]
    # a URL variable that is missing says why (one line each: a comment must not end early)
    lines += [f"# without {name}: {' '.join(why.split())}" for name, why in info.skipped.items()]
    if cleared:
        lines.append("unset " + " ".join(cleared))
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    return lines
