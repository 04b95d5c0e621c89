"""Helm chart tests: render with the real helm, validate, assert the platform's contracts."""
