"""Secret sources and their registry, keyed by type and URL scheme.

``get_source(name, options, config)`` builds a configured source;
``source_from_url(url, config)`` builds one from ``env:``, ``dotenv:PATH``,
``vault:MOUNT/PATH``, ``awssm:SECRET_ID`` or ``https://...`` (query parameters
become options, e.g. ``awssm:empire/prod?region=eu-west-1``; the connection
settings of a configured source of the same type are the defaults). Modules are
imported only when their type is used, so SDKs stay off the boot path.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ops.errors import ConfigError
from ops.secrets.sources.base import SecretSource

if TYPE_CHECKING:
    from ops.config import Config

# type -> "module:Class"
REGISTRY: dict[str, str] = {
    "env": "ops.secrets.sources.env:EnvSource",
    "dotenv": "ops.secrets.sources.dotenv:DotenvSource",
    "vault": "ops.secrets.sources.vault:VaultSource",
    "awssm": "ops.secrets.sources.awssm:AwsSecretsManagerSource",
    "https": "ops.secrets.sources.https:HttpsSource",
}


def source_class(type_name: str) -> type[SecretSource]:
    """The class registered for ``type_name``; ConfigError listing the known types."""
    target = REGISTRY.get(type_name)
    if target is None:
        raise ConfigError(
            f"unknown secrets source type {type_name!r}",
            hint=f"known types: {', '.join(REGISTRY)}",
        )
    module_name, _, cls_name = target.partition(":")
    cls: type[SecretSource] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def get_source(name: str, options: Mapping[str, Any], config: Config | None) -> SecretSource:
    """Build the source called ``name`` from its options (``type`` defaults to ``name``)."""
    type_name = options.get("type") or name
    return source_class(type_name)(name, options, config)


def configured_source(name: str, config: Config) -> SecretSource:
    """The source named ``name`` in ``[secrets.sources]``, or a built-in type of that name.

    Raises ConfigError for a name that is neither, listing what is known.
    """
    table = config.get("secrets.sources")
    if name in table:
        return get_source(name, table[name], config)
    if name in REGISTRY:
        return get_source(name, {"type": name}, config)
    known = sorted(set(table) | set(REGISTRY))
    raise ConfigError(
        f"unknown secrets source {name!r}",
        hint=f"configure [secrets.sources.{name}] or use one of: {', '.join(known)}",
    )


def source_from_url(url: str, config: Config | None) -> SecretSource:
    """A source from a URL such as ``vault:secret/empire/prod`` or a configured source name.

    Raises ConfigError for an unknown scheme, listing the known ones.
    """
    if config is not None and ":" not in url:
        return configured_source(url, config)
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    options: dict[str, Any] = {}
    if scheme in ("https", "http"):
        options = {"type": "https", "url": url}
        return get_source("https", options, config)
    rest, _, query = rest.partition("?")
    if config is not None and scheme in config.get("secrets.sources"):
        # Connection settings (address, auth, region, endpoint...) of the configured
        # source of that type are the defaults; the URL picks the location.
        base = config.get("secrets.sources")[scheme]
        keep = ("path", "secret_id", "prefix", "paths", "url")
        options.update({k: v for k, v in base.items() if v is not None and k not in keep})
    options.update(dict(parse_qsl(query)))
    if scheme == "env":
        pass
    elif scheme == "dotenv":
        options["paths"] = [rest] if rest else None
    elif scheme == "vault":
        mount, _, path = rest.strip("/").partition("/")
        if not path:
            raise ConfigError(f"{url!r}: use vault:MOUNT/PATH (e.g. vault:secret/empire/prod)")
        options.update(mount=mount, path=path)
    elif scheme == "awssm":
        if not rest:
            raise ConfigError(f"{url!r}: use awssm:SECRET_ID")
        key = "prefix" if options.get("mode") == "per-key" else "secret_id"
        options[key] = rest
    else:
        raise ConfigError(
            f"unknown secrets source scheme in {urlsplit(url).scheme or url!r}",
            hint="known: env:, dotenv:PATH, vault:MOUNT/PATH, awssm:SECRET_ID, https://URL",
        )
    options["type"] = scheme
    return get_source(scheme, options, config)


__all__ = ["REGISTRY", "SecretSource", "configured_source", "get_source", "source_from_url"]
