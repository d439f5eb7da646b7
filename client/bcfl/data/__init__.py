"""Data sets shipped inside the package (read with importlib.resources, never from outside)."""
