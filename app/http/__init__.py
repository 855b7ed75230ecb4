"""Shared HTTP plumbing: dependencies, middleware, the OpenAPI contract, problem+json."""
