"""Client-side tooling for operators' tools, make run and tests: launching, embedded servers,
progress, the stream client and its tokens. Never imported by a service."""
