"""The smoke suite (test_checks.py), which `inv smoke` runs against a stack."""

CHECKS = ["page", "assets", "health", "openapi", "todos", "cors-allowed", "cors-denied", "no-metrics"]  # in order
