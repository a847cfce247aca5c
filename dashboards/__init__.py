"""The health dashboard: one self-contained HTML page and the same data as JSON.

``collect`` reads every part (secrets, migrations, the database's statistics,
backups, drills, alerts, the scheduler, the logs tables) into one
:class:`~dashboards.collect.HealthSnapshot`; ``history`` keeps its headline
numbers over time; ``render`` writes ``db-health.html`` and ``db-health.json``;
``serve`` publishes them behind a bearer token. Nothing here is imported on
the boot path.
"""
