# USER then RUN: the command runs as that user (files it makes are its own).
FROM busybox
RUN mkdir -p /home/daemon && chown daemon:daemon /home/daemon
USER daemon
WORKDIR /home/daemon
RUN id -u > uid.txt && id -g >> uid.txt && touch mine.txt \
    && stat -c '%u %n' /home/daemon/mine.txt >> uid.txt
USER root
CMD ["cat", "/home/daemon/uid.txt"]
