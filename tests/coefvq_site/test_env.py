import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured

from coefvq_site.env import env_bool, env_float, env_int, env_list, env_networks, env_str


def test_unset_variables_take_the_default(monkeypatch):
    monkeypatch.delenv("COEFVQ_X", raising=False)
    assert env_int("COEFVQ_X", 7) == 7
    assert env_bool("COEFVQ_X", True) is True
    assert env_list("COEFVQ_X", ["a"]) == ["a"]


def test_required_variable_fails_loudly(monkeypatch):
    monkeypatch.delenv("COEFVQ_X", raising=False)
    with pytest.raises(ImproperlyConfigured, match="COEFVQ_X must be set"):
        env_str("COEFVQ_X")


@pytest.mark.parametrize(
    "reader, value, message",
    [(env_int, "ten", "not an integer"), (env_float, "1,5", "not a number"), (env_bool, "maybe", "not a boolean")],
)
def test_unparseable_values_name_the_variable(monkeypatch, reader, value, message):
    monkeypatch.setenv("COEFVQ_X", value)
    with pytest.raises(ImproperlyConfigured, match=f"COEFVQ_X.*{message}"):
        reader("COEFVQ_X", None)


def test_minimum_is_enforced(monkeypatch):
    monkeypatch.setenv("COEFVQ_X", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env_int("COEFVQ_X", 5, minimum=1)


def test_values_parse(monkeypatch):
    monkeypatch.setenv("COEFVQ_X", " yes ")
    assert env_bool("COEFVQ_X", False) is True
    monkeypatch.setenv("COEFVQ_X", "a, b,,c")
    assert env_list("COEFVQ_X", []) == ["a", "b", "c"]


def test_networks_parse_and_a_bad_one_names_the_variable(monkeypatch):
    monkeypatch.setenv("COEFVQ_X", "10.0.0.0/8, ::1")
    assert ipaddress.ip_address("10.2.3.4") in env_networks("COEFVQ_X", [])[0]
    monkeypatch.setenv("COEFVQ_X", "10.0.0.0/8,prometheus.local")
    with pytest.raises(ImproperlyConfigured, match="COEFVQ_X: 'prometheus.local' is not an IP"):
        env_networks("COEFVQ_X", [])
