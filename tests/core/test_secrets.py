"""Secrets stay out of every file and output a run writes, whatever shape or encoding they take.

These tests run without the lab: the runner drives commands on the controller itself ("local"),
and the raw files it writes are read back byte for byte.
"""

from __future__ import annotations

import pytest

from migrate.core.errors import SecretError
from migrate.core.inventory import load_inventory
from migrate.core.secrets import Secret, from_env, from_file, redact


# -- short secrets are refused ---------------------------------------------------------------------


def test_a_short_secret_is_refused_naming_its_reference_not_its_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SHORT_SECRET", "k3y")
    with pytest.raises(SecretError) as caught:
        from_env("TEST_SHORT_SECRET")
    assert "env:TEST_SHORT_SECRET" in str(caught.value) and "k3y" not in str(caught.value)
    assert "8 characters" in str(caught.value)

    file = tmp_path / "short"
    file.write_text("k3y\n")
    file.chmod(0o600)
    with pytest.raises(SecretError) as caught:
        from_file(file)
    assert str(file) in str(caught.value) and "k3y" not in str(caught.value)

    with pytest.raises(SecretError) as caught:
        Secret("k3y", "test:short")
    assert "test:short" in str(caught.value) and "k3y" not in str(caught.value)
    assert redact("the k3y is k3y") == "the k3y is k3y"  # refused, so never registered


def test_a_short_secret_is_refused_when_the_inventory_resolves_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SHORT_SECRET", "k3y")
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  eugeni:\n    address: 127.0.0.11\n"
                    "    vars: {rest_password: {env: TEST_SHORT_SECRET}}\n")
    host = load_inventory(path).host("eugeni")
    with pytest.raises(SecretError) as caught:
        host.secret("rest_password")
    message = str(caught.value)
    assert message.startswith(f"{path}: hosts.eugeni.vars.rest_password: ") and "k3y" not in message


def test_the_secrets_the_lab_generates_are_long_enough(tmp_path):
    from migrate.lab.mailman3 import ensure_secret

    value = ensure_secret(tmp_path / "secrets" / "generated")
    assert Secret(value, "test:lab").reveal() == value
