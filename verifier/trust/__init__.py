"""Trust anchors (pinned vendor roots) and generic X.509 chain validation shared by every TEE verifier."""
