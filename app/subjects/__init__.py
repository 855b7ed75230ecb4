"""The people decisions are about: erasure by crypto-shredding and their data keys."""
