# RUN --mount=type=secret: readable during the step, never in a layer or the history.
FROM busybox
RUN --mount=type=secret,id=token test -s /run/secrets/token \
    && wc -c < /run/secrets/token > /token-length.txt
RUN --mount=type=secret,id=token,env=TOKEN test -n "$TOKEN" && echo seen > /env-seen.txt
CMD ["cat", "/token-length.txt"]
