# A network namespace per target that needs one, as the application corpus has it.
from tests.apps.test_corpus import ns  # noqa: F401
