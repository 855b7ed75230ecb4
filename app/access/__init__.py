"""Who may do what: API keys, roles, desk sessions, rate limits and the server secret."""
