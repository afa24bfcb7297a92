"""A traced start-up that hands OpenSSL files by name: certifi's bundle, the default CAs."""

import ssl

import certifi

ssl.create_default_context(cafile=certifi.where())
ssl.create_default_context()
