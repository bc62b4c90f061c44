"""Parts of the platform's api-server: ASGI middleware registered by ``bp_api_plugin``."""
