# A failing RUN: its output, then file:line, the instruction and the exit code.
FROM busybox
RUN echo "first step works" > /ok.txt
RUN echo "about to fail" && exit 3
RUN echo "never reached"
