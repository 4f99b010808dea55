"""Transports in front of `VerifierService` (gRPC today). Imports point inward only."""
