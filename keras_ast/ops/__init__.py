"""Backend-agnostic operations, with each backend's fast path behind one table per op."""
