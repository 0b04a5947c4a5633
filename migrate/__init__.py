"""migrate: move mail infrastructure step by step, with dry run, verification and rollback."""

__version__ = "0.1.0"
