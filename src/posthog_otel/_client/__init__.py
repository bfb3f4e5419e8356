"""The low-level client and its HTTP layers, each importing only the ones below it.

Which module owns what: ARCHITECTURE.md (the one list of modules).
"""
