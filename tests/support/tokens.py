"""The stand-in JWKS of service tests (shared with the bench): see shared/simulators/jwks.py."""

from shared.simulators.jwks import Signer

__all__ = ["Signer"]
