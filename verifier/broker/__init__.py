"""A reference key broker: releases a secret only for a fresh, affirming attestation result whose claims satisfy a
release rule, encrypted (JWE) to the key the result binds (`cnf`)."""
