# RUN --mount=type=cache: the directory persists between builds, outside the image.
FROM busybox
ARG BUILD_NO=1
RUN --mount=type=cache,target=/var/cache/demo \
    echo "build $BUILD_NO" >> /var/cache/demo/log \
    && wc -l < /var/cache/demo/log > /cache-lines.txt
CMD ["cat", "/cache-lines.txt"]
