"""The ``lwz`` command line: one entry point that dispatches to every package's commands."""
