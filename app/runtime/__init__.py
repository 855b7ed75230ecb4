"""The running process: its context, fatal state, logging, metrics and worker processes."""
