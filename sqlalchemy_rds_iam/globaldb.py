"""The current writer region of an Aurora Global Database, for its global writer endpoint.

``<global-cluster>.global-<id>.global.rds.amazonaws.com`` names no region, and always points
at the writer of the current primary cluster, which moves on a switchover or failover. A
token must be signed for that region. Without ``aws_region``, it is read with one
``rds:DescribeGlobalClusters`` call (as AWS's own JDBC/Python wrappers do), cached, and read
again after a refused login: a token signed for the old primary's region is what a
switchover makes the server refuse.

botocore is imported here only, on first use: a global endpoint is the only path that
needs an AWS API call, so no other cold start pays for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .credentials import CredentialSource, FrozenCredentials
from .errors import RegionError

__all__ = ["GlobalWriterRegion", "writer_region"]

#: What the error says for AccessDenied: the one permission this path needs.
PERMISSION = "rds:DescribeGlobalClusters"


def _rds_client(credentials: FrozenCredentials, region: str) -> Any:
    """A botocore RDS client (honours ``AWS_ENDPOINT_URL_RDS``, as botocore does)."""
    import botocore.session

    session = botocore.session.get_session()
    return session.create_client(
        "rds",
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )


def writer_region(global_cluster: str, credentials: FrozenCredentials, api_region: str,
                  client_factory: Callable[[FrozenCredentials, str], Any] = _rds_client) -> str:
    """The region of ``global_cluster``'s writer member, from ``DescribeGlobalClusters``.

    Raises :class:`RegionError` naming what to fix: the permission, the cluster, or
    ``aws_region=`` as the way around the call.
    """
    import botocore.exceptions

    from .botocore_logs import scrubbed_logs

    try:
        # botocore logs the signed request at DEBUG: X-Amz-Security-Token, the signature
        with scrubbed_logs(credentials.secret_key, credentials.token):
            client = client_factory(credentials, api_region)
            answer = client.describe_global_clusters(GlobalClusterIdentifier=global_cluster)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise RegionError(
                f"cannot find the writer region of global database {global_cluster!r}: the "
                f"credentials ({credentials.access_key}) lack the permission {PERMISSION}; "
                f"allow it for arn:aws:rds::<account>:global-cluster:{global_cluster}, or give "
                "aws_region=<the current primary's region>"
            ) from None
        if code == "GlobalClusterNotFoundFault":
            raise RegionError(
                f"no global database {global_cluster!r} (DescribeGlobalClusters in "
                f"{api_region}): check the endpoint's first label, or give aws_region="
            ) from None
        raise RegionError(
            f"DescribeGlobalClusters for {global_cluster!r} failed ({code or exc}); give "
            "aws_region=<the current primary's region> to skip the call"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise RegionError(
            f"DescribeGlobalClusters for {global_cluster!r} failed ({exc}); give "
            "aws_region=<the current primary's region> to skip the call"
        ) from None
    for cluster in answer.get("GlobalClusters", []):
        if str(cluster.get("GlobalClusterIdentifier", "")).lower() != global_cluster:
            continue  # (a filter the server did not apply)
        for member in cluster.get("GlobalClusterMembers", []):
            if member.get("IsWriter"):
                arn = str(member.get("DBClusterArn", ""))
                parts = arn.split(":")
                if len(parts) > 3 and parts[3]:
                    return parts[3]  # arn:aws:rds:<region>:<account>:cluster:<name>
        raise RegionError(
            f"global database {global_cluster!r} has no writer member now (a failover in "
            "progress?); retry, or give aws_region="
        )
    raise RegionError(
        f"no global database {global_cluster!r} (DescribeGlobalClusters in {api_region}): "
        "check the endpoint's first label, or give aws_region="
    )


class GlobalWriterRegion:
    """One engine's cached answer: resolved on first use, again after :meth:`forget`."""

    def __init__(self, host: str, source: CredentialSource,
                 resolve: Callable[[str, FrozenCredentials, str], str] = writer_region) -> None:
        self.global_cluster = host.split(".", 1)[0].lower()
        self.source = source
        self.resolve = resolve
        self.calls = 0
        self._region: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._region is None:
                api_region = self.source.region()
                if not api_region:
                    raise RegionError(
                        f"{self.global_cluster}: a global writer endpoint names no region; give "
                        "aws_region=<the current primary's region>, or set AWS_REGION so that "
                        f"{PERMISSION} can find it"
                    )
                self.calls += 1
                self._region = self.resolve(self.global_cluster, self.source.frozen(),
                                            api_region)
            return self._region

    def forget(self) -> None:
        """After a refused login: the primary may have moved; ask again next time."""
        with self._lock:
            self._region = None
