"""Storage: SQLModel tables, engine setup, migrations and the queries the other packages use.

Importing this package does no work; build an engine with :func:`storage.engine.make_engine`.
"""
