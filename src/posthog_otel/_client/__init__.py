"""The low-level client and its HTTP layers, each importing only the ones below it.

- ``client``: ``PostHogClient``, the blocking API that mirrors the Elixir client
- ``connection``: one project's requests, the face the pipeline and flags use
- ``retry``: which failures retry, backoff, ``Retry-After``, one deadline
- ``transport``: urllib3 (the only module that imports it): pool, TLS, proxies
- ``answer``: an answer's body within its byte limit, inflated a bounded piece at a time
- ``watchdog``: cuts a request off at its deadline or stop, whatever the server sends
- ``batch``: ``/batch/`` bodies and the request size limits
- ``events``: the ``Event`` value, validation, timestamps and uuids
- ``compress``: gzip, whole or sealed so a retry rewrites only the tail
- ``config``: ``ClientConfig`` and the ``POSTHOG_*`` variables
"""
