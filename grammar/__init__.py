"""The Dockerfile grammar, shipped as package data of ``rootless.grammar``."""
