"""Rules: small pure functions from analyses to findings."""
