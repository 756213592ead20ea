# COPY of a large context; dockerignore.Dockerfile.dockerignore (next to this file)
# decides what is sent.
FROM busybox
COPY . /ctx/
RUN find /ctx -type f | wc -l > /count.txt
CMD ["cat", "/count.txt"]
