"""The scene library: YAML specs that ship with simgen as package data (``simgen.scenes``)."""
