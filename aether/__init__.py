"""Aether: the dental practices' infrastructure as Invoke and Fabric tasks.

Pure builders live here (inventory, rendering, remote scripts); the task
layers in ``tasks.py`` (local work) and ``fabfile/`` (servers) run them.
"""
