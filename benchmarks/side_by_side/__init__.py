"""Helpers of `benchmarks/side_by_side.py` (issue 13 item 1): the floor handler, the servers, the client processes,
the in-process rates and the report. Not part of the verifier package and not a test."""
