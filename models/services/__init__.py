"""The only code that writes. Each service is `verb_noun(session, *, org, ..., by)`: it checks the
rules, writes rows (including domain events and outbox messages) and never commits."""
