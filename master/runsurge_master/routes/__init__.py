"""The HTTP API's routers, one per resource (api.create_app includes them)."""
