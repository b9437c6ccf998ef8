# Fixture plugins for integration tests. Imported rather than listed in `pytest_plugins`: pytest
# refuses `pytest_plugins` in a conftest below the rootdir when the whole suite runs (`pytest tests`).
from tests.integration.conftest_openbao import openbao, openbao_factory  # noqa: F401
