"""Thin Invoke task modules, one per namespace; the root tasks.py mounts their collections."""
