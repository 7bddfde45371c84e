"""A C2SP tlog-witness: cosigns a log's checkpoints only if they extend what it saw before."""
