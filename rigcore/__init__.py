"""Shared leaves: typed configuration, the error tree, atomic files, the loop runtime, pure rig rules.

Nothing here imports another package of the project (docs/architecture.md).
"""
