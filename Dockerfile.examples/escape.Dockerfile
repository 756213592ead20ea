# COPY of a path outside the context is refused, naming this line.
FROM busybox
COPY ../outside.txt /stolen.txt
