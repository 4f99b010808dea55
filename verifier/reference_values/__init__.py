"""Reference values: the kinds the verifier knows and the store interface appraisal reads through."""
