"""Backend-agnostic operations: each backend's fast path behind one table
per op (`attention`, `dense`, `activations`, `slicing`, `compiler`), and
the pure helpers and constants that presets and models share (`patches`,
`kaldi`)."""
