"""Protocol-level fakes of external services for tests (each names itself as such)."""
