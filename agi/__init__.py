"""FastAGI handlers called from the dialplan (`openads agi`): caller lookup — issue 3."""
