"""Application callback modules used by the application controller tests."""
