"""HTTP layer: thin routers, request/response schemas, auth dependencies, error handling."""
