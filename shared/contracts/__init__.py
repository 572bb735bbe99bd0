"""Wire contracts: stream names, the CloudEvents envelope, message payloads, permissions."""
