"""Identity at the gateway: the OAuth2 endpoints and the token check for every route."""
