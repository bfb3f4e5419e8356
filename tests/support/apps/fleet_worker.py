"""One process of a fleet sharing flag definitions through a cache, as a gunicorn
worker would: a ``PostHogFlagProvider`` with local evaluation.

    python fleet_worker.py redis://127.0.0.1:6379/0 0.5   # RedisFlagDefinitionCache
    python fleet_worker.py /tmp/x/definitions.json 0.5     # FileFlagDefinitionCache

Prints ``state {json}`` whenever what it knows changes (its stats and flag ``beta``
for ``u1``), then ``ready`` once definitions load. Ends on SIGTERM, shutting the
provider down (which releases its lease).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from posthog_otel import FileFlagDefinitionCache, PostHogFlagProvider, RedisFlagDefinitionCache

where, interval = sys.argv[1], float(sys.argv[2])
if where.startswith("redis://"):
    cache: object = RedisFlagDefinitionCache(where, poll_interval=interval)
else:
    cache = FileFlagDefinitionCache(where, poll_interval=interval)
flags = PostHogFlagProvider(
    secret_key=os.environ["POSTHOG_SECRET_KEY"],
    poll_interval=interval,
    send_feature_flag_events=False,
    flag_definition_cache_provider=cache,
)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
last = None
ready = False
while not done.wait(0.02):
    stats = flags.stats()
    state = {
        "pid": os.getpid(),
        "polls": stats.definition_polls,
        "from_cache": stats.definitions_from_cache,
        "leader": stats.definitions_leader,
        "loaded": stats.definitions_loaded,
        "beta": flags.is_enabled("beta", "u1") if stats.definitions_loaded else None,
    }
    if state != last:
        print("state " + json.dumps(state), flush=True)
        last = state
    if stats.definitions_loaded and not ready:
        print("ready", flush=True)
        ready = True
flags.shutdown(5)
print("stopped", flush=True)
