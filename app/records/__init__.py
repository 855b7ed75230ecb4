"""Records as a role sees them (the seal opened only for who may); query, export, replay."""
