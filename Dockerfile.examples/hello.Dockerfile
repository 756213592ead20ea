# The quick start's example: a multi-stage build that needs no build context.
FROM busybox AS build
RUN mkdir -p /out && echo "built in a RUN step as uid $(id -u)" > /out/message

FROM busybox
COPY --from=build /out/message /message
COPY --chmod=755 <<EOF /hello.sh
#!/bin/sh
cat /message
echo "hello from a rootless container, running as uid $(id -u)"
EOF
CMD ["/hello.sh"]
