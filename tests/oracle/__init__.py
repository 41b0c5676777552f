"""Independent, deliberately naive reference implementation of the semantics (test oracle)."""
