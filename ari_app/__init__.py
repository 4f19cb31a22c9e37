"""Asterisk ARI service (`openads ari`): inbound calls, recording, missed-call queue — issue 3."""
