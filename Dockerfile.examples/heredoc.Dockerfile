# Heredocs: a RUN script, a command reading a heredoc, and COPY of an inline file.
FROM busybox
ARG NAME=heredoc
RUN <<EOF
set -e
mkdir -p /h
echo "script ran for $NAME" > /h/script.txt
EOF
RUN cat > /h/stdin.txt <<'END'
literal $NAME
END
COPY <<EOF /h/inline.txt
inline file for ${NAME}
EOF
CMD ["cat", "/h/script.txt", "/h/stdin.txt", "/h/inline.txt"]
