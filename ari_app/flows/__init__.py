"""Call flows, one module each. Importing this package registers them in `dispatcher.FLOWS`."""

from ari_app.flows import callback, inbound  # noqa: F401
