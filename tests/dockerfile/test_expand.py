"""Variable substitution, table-driven (as BuildKit's shell/lex_test.go)."""

from __future__ import annotations

import pytest

from rootless.dockerfile.expand import SubstitutionError, expand, expand_with_refs

ENV = {
    "A": "hello",
    "E": "",
    "P": "/usr/local/bin/python3.11",
    "S": "a b",
    "F": "file.tar.gz",
    "G": "*",
    "ü": "unicode",
}


@pytest.mark.parametrize(("word", "want"), [
    ("plain", "plain"),
    ("$A", "hello"),
    ("${A}", "hello"),
    ("x${A}y", "xhelloy"),
    ("$A$A", "hellohello"),
    ("$Ax", ""),  # the name is Ax, unset
    ("${A}x", "hellox"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("$", "$"),
    ("a$", "a$"),
    ("$ a", "$ a"),
    ("$-", ""),  # a special parameter, never set in a build
    ("$1", ""),
    ("$ü", "unicode"),
    ("100%", "100%"),
    # ${var:-word} and ${var-word}
    ("${UNSET:-def}", "def"),
    ("${E:-def}", "def"),
    ("${A:-def}", "hello"),
    ("${UNSET-def}", "def"),
    ("${E-def}", ""),
    ("${UNSET:-}", ""),
    ("${UNSET:-$A}", "hello"),
    ("${UNSET:-${E:-nested}}", "nested"),
    ("${UNSET:-a b}", "a b"),
    ("${UNSET:-'q}'}", "q}"),
    # ${var:+word} and ${var+word}
    ("${A:+alt}", "alt"),
    ("${E:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${E+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${A:+$A-$A}", "hello-hello"),
    # ${var?word}
    ("${A:?must be set}", "hello"),
    ("${E?ok when empty}", ""),
    # pattern removal
    ("${P#*/}", "usr/local/bin/python3.11"),
    ("${P##*/}", "python3.11"),
    ("${P%/*}", "/usr/local/bin"),
    ("${P%%/*}", ""),
    ("${F%.*}", "file.tar"),
    ("${F%%.*}", "file"),
    ("${F#*.}", "tar.gz"),
    ("${F##*.}", "gz"),
    ("${F#nomatch}", "file.tar.gz"),
    ("${F%.t?r.gz}", "file"),
    ("${F%[.]gz}", "file.tar"),
    ("${UNSET#x}", ""),
    ("${F#\\*}", "file.tar.gz"),
    # replacement
    ("${P/local/LOCAL}", "/usr/LOCAL/bin/python3.11"),
    ("${P//\\//:}", ":usr:local:bin:python3.11"),
    ("${P/l/L}", "/usr/Local/bin/python3.11"),
    ("${P//l/L}", "/usr/LocaL/bin/python3.11"),
    ("${P/local}", "/usr//bin/python3.11"),
    ("${P/nomatch/x}", "/usr/local/bin/python3.11"),
    ("${F/*./}", "gz"),
    ("${A/$G/x}", "hello"),  # a variable's value in a pattern matches literally
    # quotes
    ("'$A'", "$A"),
    ('"$A"', "hello"),
    ('"$S"', "a b"),
    ("\"'$A'\"", "'hello'"),
    ("'\"$A\"'", '"$A"'),
    ('"a b"c', "a bc"),
    ("'a'\"b\"c", "abc"),
    ('""', ""),
    ("''", ""),
    # escapes
    ("\\$A", "$A"),
    ("\\${A}", "${A}"),
    ("a\\ b", "a b"),
    ("\\\\", "\\"),
    ("\\x", "x"),
    ("end\\", "end"),
    ('"\\$A"', "$A"),
    ('"\\"q\\""', '"q"'),
    ('"\\x"', "\\x"),
    ('"\\\\"', "\\"),
    ("'\\$A'", "\\$A"),
])
def test_expand(word: str, want: str) -> None:
    assert expand(word, ENV) == want


@pytest.mark.parametrize(("word", "want"), [
    ("`$A", "$A"),
    ("\\$A", "\\hello"),
    ("C:\\path\\$A", "C:\\path\\hello"),
    ("a` b", "a b"),
    ('"`"q`""', '"q"'),
])
def test_expand_with_backtick_escape(word: str, want: str) -> None:
    assert expand(word, ENV, escape="`") == want


@pytest.mark.parametrize(("word", "message"), [
    ("${UNSET:?must be set}", "UNSET: must be set"),
    ("${E:?}", "E: is not allowed to be empty"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${A", "missing '}' in substitution"),
    ("${A:-x", "missing '}' in substitution"),
    ("${}", "bad substitution"),
    ("${A:x}", "unsupported modifier (x) in substitution"),
    ("${A!}", "unsupported modifier (!) in substitution"),
    ("'open", "matching single-quote"),
    ('"open', "matching double-quote"),
])
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(SubstitutionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand(word, ENV)


def test_refs_name_every_variable_looked_up() -> None:
    value, refs = expand_with_refs("${A}-$UNSET-${E:-$P}", ENV)
    assert value == "hello--/usr/local/bin/python3.11"
    assert refs == {"A", "UNSET", "E", "P"}
