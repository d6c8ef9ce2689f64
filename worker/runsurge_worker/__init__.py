"""RunSurge worker."""
