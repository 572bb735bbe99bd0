"""The security service: identities, tokens, encryption at rest and the audit chain."""
