"""Session storage: the session format (sessions.manifest), frame files (sessions.writer), recovery."""
