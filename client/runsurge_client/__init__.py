"""RunSurge client: the `runsurge` CLI and a small SDK (runsurge_client.api.Client)."""
