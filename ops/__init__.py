"""empire-ops: a secrets-first ops and resilience control plane for one Supabase database."""


def installed_version(missing: str = "unknown") -> str:
    """The installed empire-ops version, or ``missing`` in a source tree never installed.

    Read lazily (importlib.metadata costs time on the boot path).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("empire-ops")
    except PackageNotFoundError:
        return missing
