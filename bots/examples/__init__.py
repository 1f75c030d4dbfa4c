"""Example bots: configs in configs/, tools here."""
