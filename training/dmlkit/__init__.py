"""DMLKit training side: losses, miners, data, trainer and the exporter to the Swift runtime."""

__version__ = "0.1.0"
