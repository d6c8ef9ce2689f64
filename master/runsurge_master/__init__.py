"""RunSurge master."""
