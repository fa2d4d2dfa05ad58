"""graphc's version (ground floor: every module may import it; it imports nothing)."""
__version__ = "0.1.0"
