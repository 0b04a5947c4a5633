"""Tests for migrate.mailman and the Mailman 2 tree generator it is tested on."""
