# COPY through a symlink that points out of the context is refused.
FROM busybox
COPY link-out /stolen
