"""Dockerfile text → IR (pure: no files, no network, no environment).

``parse(text, filename)`` returns a ``Dockerfile`` (see ``ir.py``) or raises
``DockerfileSyntaxError`` naming ``file:line:col`` with the offending line and a caret.
"""

from rootless.dockerfile.ir import Dockerfile
from rootless.dockerfile.parse import parse

__all__ = ["Dockerfile", "parse"]
