"""GANs that expand small handwriting datasets with realistic, labeled synthetic samples."""

__version__ = "0.1.0"
