"""Keys, roles and the cryptography that keeps a person's data sealed."""
