"""Small shared utilities: atomic files, checkpoints, random state."""
