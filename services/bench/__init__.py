"""`make bench`: the account service driven through Redis Streams, beside a bare loop.

Throughput and latency are counted from each command's XADD to its outcome event on the
account events stream, in the bench's own process and clock; the service runs as a separate
process, as in production.
"""
