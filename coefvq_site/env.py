"""Typed readers for settings that come from the environment.

Each one fails loudly: a value that is set but cannot be parsed stops start-up with the
variable's name, rather than silently falling back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MISSING = object()


def _raw(name: str, default):
    value = os.environ.get(name)
    if value is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"The environment variable {name} must be set.")
        return None
    return value.strip()


def env_str(name: str, default: str | None | object = _MISSING) -> str | None:
    value = _raw(name, default)
    return default if value is None else value


def env_bool(name: str, default: bool | object = _MISSING) -> bool:
    value = _raw(name, default)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no).")


def _number(name: str, default, parse, kind: str, minimum):
    value = _raw(name, default)
    if value is None:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}.")
    return number


def env_int(name: str, default: int | object = _MISSING, *, minimum: int | None = None) -> int:
    return _number(name, default, int, "an integer", minimum)


def env_float(name: str, default: float | object = _MISSING, *, minimum: float | None = None) -> float:
    return _number(name, default, float, "a number", minimum)


def env_list(name: str, default: list[str] | object = _MISSING) -> list[str]:
    value = _raw(name, default)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path | object = _MISSING) -> Path:
    value = _raw(name, default)
    if value is None:
        return Path(default)
    return Path(value).expanduser()


_RATE = re.compile(r"^(\d+)/([smhd])$")


def env_rate(name: str, default: str | object = _MISSING) -> str:
    """A request rate, "<count>/<s|m|h|d>" ("30/m"): the form both django-ratelimit and DRF read."""
    value = env_str(name, default)
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 30/m (count per s, m, h or d).")
    return value


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def env_device(name: str, default: str | object = _MISSING) -> str:
    """A torch device for the models: "auto" (CUDA when the machine has it), "cpu", "cuda", "cuda:1"."""
    value = env_str(name, default)
    if not _DEVICE.match(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a device (auto, cpu, cuda, cuda:N or mps).")
    return value


def env_networks(name: str, default: list[str] | object = _MISSING) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses or networks, comma-separated: "127.0.0.1,10.0.0.0/8,::1"."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network.") from None
    return networks
