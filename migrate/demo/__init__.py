"""A small, reversible demonstration step used by the rehearsal and the engine's tests."""
