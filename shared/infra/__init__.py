"""Infrastructure the services share, by role: `stream` (the message path), `trust` (who wrote
an entry) and `runtime` (a service process). Client-side tooling lives in `shared.tooling`."""
