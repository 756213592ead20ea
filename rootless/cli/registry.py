"""Verbs that talk to registries: pull, push, login, logout."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import Any

from rootless.errors import UsageError

DEFAULT_REGISTRY = "docker.io"


def register(verbs: argparse._SubParsersAction[Any],
             groups: dict[str, argparse._SubParsersAction[Any]]) -> None:
    for parent in (verbs, groups["image"]):
        pull = parent.add_parser("pull", help="Download an image from a registry",
                                 description="Download an image from a registry")
        pull.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
        pull.add_argument("-a", "--all-tags", action="store_true",
                          help="download all tagged images in the repository")
        pull.add_argument("--platform", help="OS/ARCH[/VARIANT] to choose from a manifest list")
        pull.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
        _tls_flag(pull)
        pull.set_defaults(handler=_pull)

        push = parent.add_parser("push", help="Upload an image to a registry",
                                 description="Upload an image to a registry")
        push.add_argument("reference", metavar="NAME[:TAG]")
        push.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
        _tls_flag(push)
        push.set_defaults(handler=_push)

    login = verbs.add_parser("login", help="Log in to a registry",
                             description="Log in to a registry (default Docker Hub); "
                                         "credentials go to Docker's config.json")
    login.add_argument("server", nargs="?", metavar="SERVER")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password")
    login.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    _tls_flag(login)
    login.set_defaults(handler=_login)

    logout = verbs.add_parser("logout", help="Log out from a registry",
                              description="Log out from a registry (default Docker Hub)")
    logout.add_argument("server", nargs="?", metavar="SERVER")
    logout.set_defaults(handler=_logout)


def _tls_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-verify", type=_boolean, default=None, metavar="BOOL",
                        help="require HTTPS and verify certificates (default: true, "
                             "except for localhost and insecure registries)")


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _debug_logging(debug: bool) -> None:
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("DEBU %(message)s"))
        log = logging.getLogger("rootless.registry")
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)


def _pull(opts: Any, args: argparse.Namespace) -> int:
    from rootless.reference import ImageReference
    from rootless.registry.progress import for_terminal
    from rootless.registry.pull import pull_all_tags, pull_image
    from rootless.store import Store

    _debug_logging(opts.debug)
    reference = ImageReference.parse(args.reference)
    progress = for_terminal(quiet=args.quiet)
    if not args.all_tags and "@" not in args.reference and \
            ":" not in args.reference.rsplit("/", 1)[-1]:
        progress.line(f"Using default tag: {reference.tag}")
    store = Store.open(opts.root)
    if args.all_tags:
        if reference.digest is not None or ":" in args.reference.rsplit("/", 1)[-1]:
            raise UsageError("tag can't be used with --all-tags/-a")
        pull_all_tags(store, reference, args.platform, progress=progress,
                      tls_verify=args.tls_verify)
        if args.quiet:
            print(reference.familiar_name)
        return 0
    pull_image(store, reference, args.platform, progress=progress, tls_verify=args.tls_verify)
    if args.quiet:
        print(str(reference))
    return 0


def _push(opts: Any, args: argparse.Namespace) -> int:
    from rootless.reference import ImageReference
    from rootless.registry.progress import for_terminal
    from rootless.registry.push import push_image
    from rootless.store import Store

    _debug_logging(opts.debug)
    reference = ImageReference.parse(args.reference)
    store = Store.open(opts.root)
    push_image(store, reference, progress=for_terminal(quiet=args.quiet),
               tls_verify=args.tls_verify)
    return 0


def _login(opts: Any, args: argparse.Namespace) -> int:
    from rootless.registry.login import login, normalise_server

    _debug_logging(opts.debug)
    server = normalise_server(args.server or DEFAULT_REGISTRY)
    if args.password and args.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    username = args.username
    password = args.password
    if args.password_stdin:
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    else:
        if args.password:
            print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                  file=sys.stderr)
        if not username:
            if not sys.stdin.isatty():
                raise UsageError("cannot prompt for a username: stdin is not a terminal",
                                 )
            username = input("Username: ").strip()
        if password is None:
            password = getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("username and password are required")
    where = login(server, username, password, tls_verify=args.tls_verify)
    if isinstance(where, str):
        print(f"Credentials saved with {where}")
    else:
        print(f"WARNING! Your password will be stored unencrypted in {where}.\n"
              "Configure a credential helper to remove this warning (credsStore in that file).",
              file=sys.stderr)
    print("Login Succeeded")
    return 0


def _logout(opts: Any, args: argparse.Namespace) -> int:
    from rootless.registry.credentials import erase_credentials
    from rootless.registry.login import normalise_server

    server = normalise_server(args.server or DEFAULT_REGISTRY)
    if erase_credentials(server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0
