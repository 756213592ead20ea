"""rootless: build and run Docker images as an ordinary user."""

__version__ = "0.1.0"
