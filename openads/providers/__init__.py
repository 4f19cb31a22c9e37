"""Provider adapters behind the Protocols of `models/ports.py` (STYLE.md section 6).

`openads/providers/<kind>/<name>.py` implements a port; `registry.py` picks one by config.
"""
