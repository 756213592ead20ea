# Heredocs: a RUN script, a #! script, a command reading a heredoc, COPY of an inline file.
FROM busybox
ARG NAME=heredoc
RUN <<EOF
set -e
mkdir -p /h
echo "script ran for $NAME" > /h/script.txt
EOF
RUN <<EOF
#!/bin/sh -e
echo "interpreter ran $(basename $0)" > /h/shebang.txt
EOF
RUN cat > /h/stdin.txt <<'END'
literal $NAME
END
COPY <<EOF /h/inline.txt
inline file for ${NAME}
EOF
CMD ["cat", "/h/script.txt", "/h/shebang.txt", "/h/stdin.txt", "/h/inline.txt"]
