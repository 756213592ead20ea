# Multi-stage: COPY --from a named stage; --target stops early; unused stages are skipped.
FROM busybox AS builder
RUN mkdir /out && echo "built by builder" > /out/artifact.txt

FROM busybox AS unused
RUN echo "this stage is never needed" && exit 1

FROM busybox AS final
COPY --from=builder /out/artifact.txt /artifact.txt
CMD ["cat", "/artifact.txt"]

FROM final AS debug
RUN echo "debug tools" > /debug.txt
