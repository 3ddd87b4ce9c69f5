"""Data: record types (the only types that cross stage boundaries), readers, formatting, starter set."""
