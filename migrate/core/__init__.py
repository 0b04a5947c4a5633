"""The engine: inventory, transport, executor, steps, runner, journal. Nothing phase-specific."""
