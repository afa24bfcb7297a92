"""The ledger service's Django app: one model, its table made by ``migrate --run-syncdb``."""
