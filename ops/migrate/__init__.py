"""Migrations: the Empire schema as ordered SQL files, and the runner that applies them.

``files`` reads and splits migration files, ``runner`` applies and reverts
them under a session-level advisory lock, keeping Supabase CLI's history table
and a side table with checksums, ``scratch`` proves them on a scratch database.
"""
