"""The record log's integrity: chain verification, the access log, checkpoints, proofs."""
