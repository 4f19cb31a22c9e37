"""Pure rules: no database, no I/O."""
