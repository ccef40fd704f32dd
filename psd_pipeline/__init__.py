"""PSD -> curated layer stacks -> dataset shards; and the synthetic PSD generator."""
