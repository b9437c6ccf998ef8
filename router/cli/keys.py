"""`residency-router keys init | rotate | show`: the development keyring (not for production);
`residency-router keys export-trust`: the trust bundle readers verify with (any signer)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_DEV_NOTE = "For development and tests only: the keyring file holds secret keys in clear."


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "keys",
        help="the development keyring (not for production) and the readers' trust bundle",
        description=_DEV_NOTE,
    )
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    init = ksub.add_parser("init", help="create a development keyring (mode 0600)", description=_DEV_NOTE)
    init.add_argument("--keyring", type=Path, required=True)
    init.add_argument("--jurisdictions", default="eu,uk,us", help="comma-separated (default: eu,uk,us)")
    init.set_defaults(handler=_init)

    rotate = ksub.add_parser("rotate", help="add a new version of a KEK or the signing key", description=_DEV_NOTE)
    rotate.add_argument("--keyring", type=Path, required=True)
    what = rotate.add_mutually_exclusive_group(required=True)
    what.add_argument("--jurisdiction", help="rotate this jurisdiction's KEK")
    what.add_argument("--signing", action="store_true", help="rotate the signing key")
    rotate.set_defaults(handler=_rotate)

    show = ksub.add_parser("show", help="key ids, versions and public keys (no secrets)", description=_DEV_NOTE)
    show.add_argument("--keyring", type=Path, required=True)
    show.set_defaults(handler=_show)

    export = ksub.add_parser(
        "export-trust",
        help="write the trust bundle: the signer's public keys with status and validity, for readers",
        description="Reads the signing key named by keys.signer (OpenBao transit or the dev keyring) and writes its "
        "public keys only: readers pass the file to `consume --trust`.",
    )
    export.add_argument("--config", required=True, help="router YAML config (its keys.signer section)")
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        help="where to write the bundle (JSON); versions an existing bundle there lists that the signer no longer "
        "describes (OpenBao drops those below min_decryption_version) are kept as revoked",
    )
    export.set_defaults(handler=_export_trust)


def _warn() -> None:
    print(f"warning: {_DEV_NOTE} Use an openbao key provider in production.", file=sys.stderr)


def _init(args: argparse.Namespace) -> int:
    from router.keys.local import LocalKeyring  # noqa: PLC0415 (keep --help fast)

    names = [j.strip() for j in str(args.jurisdictions).split(",") if j.strip()]
    ring = LocalKeyring.create(args.keyring, names)
    _warn()
    print(f"created {args.keyring} (mode 0600) with KEKs {', '.join(sorted(ring.keks))} and a signing key")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from router.keys.local import DEFAULT_SIGNING_KEY, LocalKeyring  # noqa: PLC0415

    ring = LocalKeyring.load(args.keyring)
    if args.signing:
        version = ring.rotate_signing(DEFAULT_SIGNING_KEY)
        what = f"signing key {DEFAULT_SIGNING_KEY}"
    else:
        version = ring.rotate_kek(args.jurisdiction)
        what = f"KEK {args.jurisdiction}"
    ring.save()
    _warn()
    print(f"{what} is now at version {version}; older versions are kept for decryption")
    return 0


def _show(args: argparse.Namespace) -> int:
    from router.keys.local import LocalKeyring  # noqa: PLC0415

    _warn()
    print(json.dumps(LocalKeyring.load(args.keyring).describe(), indent=2))
    return 0


def _export_trust(args: argparse.Namespace) -> int:
    from router.config.loader import load_config  # noqa: PLC0415
    from router.errors import ConfigError  # noqa: PLC0415
    from router.keys.factory import build_trust_bundle  # noqa: PLC0415
    from router.keys.trust import TrustBundle  # noqa: PLC0415

    config = load_config(args.config)
    if config.keys is None:
        raise ConfigError(f"{args.config} has no 'keys' section: nothing names the signer")
    previous = TrustBundle.load(args.out) if args.out.exists() else None  # its dropped versions stay revoked
    bundle = build_trust_bundle(config.keys, previous=previous)
    bundle.save(args.out)
    for s in bundle.signers:
        print(f"{s.key} {s.status.value}")
    print(f"wrote {args.out} ({len(bundle.signers)} signer versions from {bundle.source}; public keys only)")
    return 0
