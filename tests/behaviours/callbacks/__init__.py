"""Callback modules used by the behaviour tests (each a real module, as users write them)."""
