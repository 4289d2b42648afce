"""Plain helpers shared by the test folders (functions, constants and the real daemons the tests run).

Fixtures are not here: each test folder's conftest.py holds its fixtures, built from these helpers.
Tests import helpers as `from helpers.api import submit`; `tests/` is on pytest's `pythonpath`.
"""
