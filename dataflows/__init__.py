"""Bytewax dataflows: the engine's stages wired as keyed steps, with their sources and sinks."""
