"""Helpers the tests share: hub processes, odd servers and proxies. Nothing here is a test."""
