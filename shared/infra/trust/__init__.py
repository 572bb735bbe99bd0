"""Trust: who wrote an entry (tokens, service signatures, keys), revocations, audit records."""
