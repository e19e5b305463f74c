"""Invoke task namespaces for work on this machine (``inv NAME``)."""
