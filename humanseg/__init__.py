"""humanseg: person segmentation against a captured background reference."""

__version__ = "0.1.0"
