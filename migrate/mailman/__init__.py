"""Mailman: reading the legacy Mailman 2.1 data (config.pck, request.pck) and the list steps built on it.

Everything here works on bytes fetched from the legacy host; that host needs no Python of its own.
"""
