# ADD auto-extracts local archives (detected by content), COPY does not.
FROM busybox
ADD payload.tar.gz /opt/
ADD payload.tar.xz /opt/xz/
COPY payload.tar.gz /opt/copied/
CMD ["cat", "/opt/payload/hello.txt"]
