"""The task credentials broker: one upstream fetch for every process and language in the task.

```python
import taskcreds

with taskcreds.Broker() as broker:          # fetches once from the task's endpoint
    env = {**os.environ, **broker.environment()}
    env.pop("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", None)   # or broker.client_environment()
    subprocess.run(["node", "app.js"], env=env)
```

:class:`Broker` is a small HTTP server on loopback, backed by one
:class:`~taskcreds.CredentialProvider`, that answers the container-credentials contract as the
ECS agent does; any SDK that reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` uses it unchanged. ``python -m taskcreds exec`` and
``python -m taskcreds broker`` run it from the command line; docs/broker.md has the whole story.
No boto3; HTTP is framed by httptools (llhttp), the one dependency the broker adds.
``GET /metrics`` needs the optional ``prometheus_client`` (``taskcreds[prometheus]``), imported
on the first scrape.
"""

from __future__ import annotations

from taskcreds.broker._broker import (
    CREDENTIALS_PATH,
    FAILURE_HOLD,
    METRICS_PATH,
    STATS_PATH,
    Broker,
    client_environment,
)
from taskcreds.broker._stats import BrokerStats, ClientStats, CredentialsStats, UpstreamStats

__all__ = [
    "CREDENTIALS_PATH",
    "FAILURE_HOLD",
    "METRICS_PATH",
    "STATS_PATH",
    "Broker",
    "BrokerStats",
    "ClientStats",
    "CredentialsStats",
    "UpstreamStats",
    "client_environment",
]
