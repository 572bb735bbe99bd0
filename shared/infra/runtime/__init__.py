"""A service process's runtime: settings, pool, logs, metrics, tracing, Redis client, health."""
