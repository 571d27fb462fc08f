"""Development-only tools (Azurite launcher, benchmarks). Not deployed with the Function App (.funcignore)."""
