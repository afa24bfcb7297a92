"""Remote logging to a syslog collector: ``config`` (the boot arguments), ``sender``.

See ``riad.services.syslog.sender`` for what is sent and how.
"""
