# dpkg -i of a locally built .deb inside a Debian image made offline with mmdebstrap.
FROM debian-min
COPY hello-rootless.deb /tmp/
RUN dpkg -i /tmp/hello-rootless.deb && rm /tmp/hello-rootless.deb
RUN hello-rootless > /hello.txt && dpkg -s hello-rootless | grep -q '^Status: install ok installed'
CMD ["hello-rootless"]
