"""Training and evaluation runs on shard directories."""
