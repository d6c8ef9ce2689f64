"""RunSurge's private certificate authority (see ca.py) and its command line (cli.py)."""
