"""The content-blind relay."""
