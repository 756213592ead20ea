# COPY --chown with names from the image's /etc/passwd and /etc/group, and numbers.
FROM busybox
COPY --chown=daemon:daemon owned.txt /home/daemon/owned.txt
COPY --chown=1234:5678 --chmod=0640 owned.txt /numeric/owned.txt
RUN stat -c '%u:%g %a %n' /home/daemon/owned.txt /numeric/owned.txt > /owners.txt
CMD ["cat", "/owners.txt"]
