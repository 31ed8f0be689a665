"""A local stand-in for the ECS agent's credentials endpoint, for tests, ``serve-local`` and demos.

```python
from taskcreds.local import AgentServer, Faults, RotatingSource

with AgentServer(RotatingSource(lifetime=900), faults=Faults(fail_first=2)) as server:
    provider = taskcreds.CredentialProvider(server.environment())
```

:class:`AgentServer` answers as the agent does (paths, JSON and plain-text errors, throttling);
a *source* (any callable returning :class:`~taskcreds.credentials.Credentials`) says what it
hands out; :class:`Faults` makes it misbehave. The server itself uses the standard library only;
:class:`AssumeRoleSource` and :class:`SessionCredentialsSource` hand out real AWS credentials and
import boto3 when they first fetch.
"""

from __future__ import annotations

from taskcreds.local._answers import THROTTLE_MESSAGE, credentials_document, format_expiration
from taskcreds.local._aws_sources import (
    AssumeRoleSource,
    CredentialSourceError,
    SessionCredentialsSource,
)
from taskcreds.local._faults import AGENT_RPS_BURST, AGENT_RPS_LIMIT, Faults, RateLimiter
from taskcreds.local._sources import (
    DEFAULT_ROLE_ARN,
    CredentialSource,
    RotatingSource,
    ServedSource,
    StaticSource,
)
from taskcreds.local.server import (
    IO_TIMEOUT,
    AgentServer,
    RecordedRequest,
)

__all__ = [
    "AGENT_RPS_BURST",
    "AGENT_RPS_LIMIT",
    "DEFAULT_ROLE_ARN",
    "IO_TIMEOUT",
    "THROTTLE_MESSAGE",
    "AgentServer",
    "AssumeRoleSource",
    "CredentialSource",
    "CredentialSourceError",
    "Faults",
    "RateLimiter",
    "RecordedRequest",
    "RotatingSource",
    "ServedSource",
    "SessionCredentialsSource",
    "StaticSource",
    "credentials_document",
    "format_expiration",
]
