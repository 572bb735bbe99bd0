"""The message path: consumers, routers, the exactly-once pipeline, inbox, outbox relay."""
