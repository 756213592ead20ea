# Cache: editing b.txt reruns only the steps from COPY b.txt on.
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /from-a.txt && date +%s%N > /stamp-a
COPY b.txt /b.txt
RUN cat /b.txt > /from-b.txt && date +%s%N > /stamp-b
CMD ["cat", "/from-a.txt", "/from-b.txt"]
