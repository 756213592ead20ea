"""``rootless build``: Dockerfile IR → image in the store.

Modules, in the order data flows through them:

``ignore``    .dockerignore patterns, matched as Docker's patternmatcher does (pure)
``context``   the build context (directory, tarball, stdin tar): visible files, source
              resolution that never leaves it, content checksums for cache keys
``plan``      PURE: IR + build args + base images → stages (only those the target
              needs) and steps with cache keys
``config``    PURE: image config and history folds, as ``docker build`` writes them
``cache``     ``<root>/buildcache``: step results by cache key, cache-mount directories
``copy``      COPY/ADD semantics on a mounted rootfs (dest rules, --chown, archives, URLs)
``run``       a RUN step's process spec and mounts, and cleaning sandbox stubs out of it
``executor``  walks the plan: cache lookup, else cowfs + sandbox/copy → layer → store
``progress``  ``--progress plain|tty`` output like BuildKit's
"""
