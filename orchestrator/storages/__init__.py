"""Storages: storage URLs (checked, masked), opening a storage (the SQLite recipe, PostgreSQL) in `storage`, and what
counts toward a study's target in `counts` (torch-free, so `status` stays fast).

Imports: the base modules only.
"""
