"""The data service: validated, RLS-enforced reads and writes of the Empire's tables (issue 12).

``model`` reads the tables from the committed schema manifest.
"""
