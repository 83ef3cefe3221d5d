"""Pure decisions, free of I/O: tests drive these with plain values."""
