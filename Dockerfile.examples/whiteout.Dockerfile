# RUN that creates and deletes files: the layer carries new files and .wh. whiteouts.
FROM busybox
RUN mkdir -p /work && echo kept > /work/kept.txt && echo gone > /work/gone.txt
RUN rm /work/gone.txt && rm /bin/vi && echo "$(ls /work)" > /work/listing.txt
CMD ["cat", "/work/listing.txt"]
