"""Alert channels: a registry by name, each module imported only when its channel is used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ops.alerts.channels.base import AlertChannel, AlertDeliveryFailed, OutgoingMessage

CHANNELS: dict[str, str] = {
    "email": "ops.alerts.channels.email:EmailChannel",
    "webhook": "ops.alerts.channels.webhook:WebhookChannel",
}

__all__ = [
    "CHANNELS",
    "AlertChannel",
    "AlertDeliveryFailed",
    "OutgoingMessage",
    "active_channels",
    "channel_class",
]


def channel_class(name: str) -> type[AlertChannel]:
    """The class of channel ``name``; ValueError listing the known ones."""
    if name not in CHANNELS:
        raise ValueError(f"unknown alert channel {name!r}; known: {', '.join(CHANNELS)}")
    module, _, attr = CHANNELS[name].partition(":")
    cls: type[AlertChannel] = getattr(importlib.import_module(module), attr)
    return cls


def active_channels(config: Any, secrets: Mapping[str, str]) -> dict[str, AlertChannel]:
    """Every channel that is on for ``config`` and these secret values, by name."""
    out: dict[str, AlertChannel] = {}
    for name in CHANNELS:
        cls = channel_class(name)
        if cls.is_on(config, secrets):
            out[name] = cls(config, secrets)
    return out
