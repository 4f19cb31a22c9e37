"""FastAGI routes: one module per script, registered explicitly in `agi.server.ROUTES`."""
