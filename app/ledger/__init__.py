"""The record log, below everything: tables, migrations, the hash chain, sealing, Merkle tree."""
