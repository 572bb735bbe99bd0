"""Prometheus metrics every service exposes on /metrics."""

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter("alluse_messages_consumed_total", "Entries read and applied", ["stream"])
REJECTED = Counter(
    "alluse_messages_rejected_total", "Entries answered with a rejection", ["stream"]
)
DEAD = Counter("alluse_messages_dead_lettered_total", "Entries sent to the DLQ", ["stream"])
LATENCY = Histogram(
    "alluse_handler_seconds",
    "Time to apply one batch",
    ["stream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PENDING = Gauge("alluse_stream_pending", "Entries delivered but not acknowledged", ["stream"])
LAG = Gauge("alluse_stream_lag", "Entries not yet delivered to the consumer group", ["stream"])
# Ordered consumption (shared/infra/stream/partitions.py): per partition stream of a logical stream.
PARTITION_PENDING = Gauge(
    "alluse_partition_pending",
    "Entries moved to the partition and not yet applied",
    ["stream", "partition"],
)
PARTITION_LAG = Gauge(
    "alluse_partition_lag_seconds",
    "Age of the oldest entry waiting in the partition (0 when it is empty)",
    ["stream", "partition"],
)
DLQ_DEPTH = Gauge(
    "alluse_dlq_entries", "Entries waiting in the stream's dead-letter stream", ["stream"]
)
OUTBOX_BACKLOG = Gauge(
    "alluse_outbox_backlog", "Committed events not yet relayed to Redis", ["service"]
)
RELAYED = Counter("alluse_outbox_relayed_total", "Events relayed from the outbox", ["service"])
READY = Gauge("alluse_ready", "1 when the service reaches Redis and PostgreSQL", ["service"])
TOKEN_REFUSALS = Counter(
    "alluse_token_refusals_total", "Entries refused for their token or role", ["code"]
)
RATE_LIMITED = Counter(
    "alluse_rate_limited_total", "Commands and queries refused over their client's rate", ["kind"]
)
# Lanes (docs/lanes.md): a lane stream reset after its owner left it unusable (an id at the
# end of the id space), and entries a router could not move (dead-lettered with the reason).
LANE_RESETS = Counter(
    "alluse_lane_resets_total", "Lane streams deleted after an exhausted id space", ["stream"]
)
ROUTE_FAILURES = Counter(
    "alluse_route_failures_total", "Routing passes that failed and were retried", ["stream"]
)
# Entries written straight into a partitioned stream's partitions, not routed (the integration
# service's effects while none waits on the public stream; docs/architecture.md "Scaling out").
PLACED = Counter(
    "alluse_stream_placed_total", "Entries written straight into their partitions", ["stream"]
)
OUTCOMES = Counter("alluse_outcomes_total", "Outcomes written to clients' lanes", ["type"])
STREAM_RESETS = Counter(
    "alluse_stream_resets_total", "Consumed streams found deleted and recreated", ["stream"]
)
