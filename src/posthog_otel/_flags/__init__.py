"""Feature flags: values, the provider, its cache, exposures and OpenFeature.

- ``values``: ``FeatureFlag`` and ``FlagsResponse``, parsed from PostHog's answers
- ``provider``: ``PostHogFlagProvider``, identity from context, span events
- ``cache``: TTL and LRU, single flight, stale grace, the outage breaker
- ``exposure``: ``$feature_flag_called`` properties and de-duplication
- ``hashing``: PostHog's rollout hash (shared with the devserver)
- ``openfeature``: the OpenFeature provider (extra ``openfeature``)
"""
