"""Appraisal: findings, AR4SI trust vectors, policies and per-TEE appraisal of verified claims."""
