# Only metadata: no layer is added, every instruction lands in the config.
FROM busybox
ARG VERSION=1.2.3
ENV APP_VERSION=$VERSION APP_HOME=/srv/app
LABEL org.opencontainers.image.title="metadata example" version=$VERSION
EXPOSE 8080 53/udp
WORKDIR $APP_HOME
USER nobody
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=3s CMD true
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD ["hello", "from", "metadata"]
