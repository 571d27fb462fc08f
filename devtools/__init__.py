"""Development-only tools: the Azurite launcher, `make run`, the simulator as a child process, the benchmarks.

Not deployed with the Function App (.funcignore).
"""
