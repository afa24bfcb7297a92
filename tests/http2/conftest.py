# The static website as its own tests serve it, and a network namespace per target
# that needs one, as the application corpus has them.
from tests.apps.test_corpus import ns  # noqa: F401
from tests.examples.test_static_site import site  # noqa: F401
