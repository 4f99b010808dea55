"""NVIDIA's own GPU verifier as a test-only reference (nv_reference.py runs in .venv-nvidia; harness.py here)."""
