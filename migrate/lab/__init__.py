"""The built-in lab: real test hosts and services on this machine's loopback addresses.

Each component (sshd hosts, Mailman 3 core, ...) has up / status / down, is idempotent and is
tracked by pid files under the lab root. Tests use the same code as fixtures.
"""
