"""Approved workloads: the unit of trust (ARCHITECTURE.md "Workloads")."""
