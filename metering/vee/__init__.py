"""Validation, estimation, editing (VEE) of meter readings (DOMAIN.md §3)."""
