"""``residency-router quarantine``: read a jurisdiction's quarantine topic as an operator.

``list``, ``tail`` and ``stats`` print metadata only (times, positions, entity, operation, reason,
field names, categories, policy version, value-free detail). ``show --decrypt`` is the one command
that prints event data: it needs the jurisdiction's key and first writes an access record to the
audit topic (:mod:`router.quarantine.access`). Every read is ``read_committed``. Errors (unknown
jurisdiction, missing topic, malformed ``--offset``, a key that cannot open the record, a cluster that
refuses the client's TLS or authentication) print one message naming the option or setting and exit 2.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any

_ACL_NOTE = (
    "Viewing metadata (list, tail, stats, show) needs read access to the quarantine topic; "
    "show --decrypt also needs the jurisdiction's key (its KMS decrypt permission) and write access to the "
    "audit topic, where the access is recorded before anything is printed (docs/operations.md)."
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="router YAML config (jurisdictions, policy.quarantine_topic, "
                                                    "clusters.default; keys and audit for --decrypt)")
    p.add_argument("--jurisdiction", required=True, help="whose quarantine topic to read (e.g. eu)")
    p.add_argument("--bootstrap", metavar="HOST:PORT,...", help="override clusters.default.bootstrap")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "quarantine", help="inspect a jurisdiction's quarantine topic (metadata; --decrypt is audited)",
        description="Read quarantine.<jurisdiction> (read_committed). " + _ACL_NOTE,
    )
    verbs = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)

    for name, helptext in (("list", "print the quarantined records, one value-free line each"),
                           ("tail", "print new quarantined records as they arrive, until interrupted")):
        v = verbs.add_parser(name, help=helptext, description=helptext + ". " + _ACL_NOTE)
        _common(v)
        v.add_argument("--reason", help="only this reason code (e.g. UNRESOLVED_JURISDICTION)")
        v.add_argument("--since", metavar="TIME",
                       help="only records quarantined at or after TIME: ISO 8601 (2026-11-29T04:00:00Z), a "
                            "duration back from now (15m, 2h, 7d) or epoch milliseconds"
                            + ("; tail starts there instead of at the end" if name == "tail" else ""))
        v.add_argument("--json", action="store_true", help="one JSON object per record")
        if name == "tail":
            v.add_argument("--max-idle-s", type=float, default=None,
                           help="stop after this many seconds without a new record (for scripts)")
        else:
            v.add_argument("--timeout", type=float, default=120.0, help="seconds to read the whole topic")
        v.set_defaults(handler=_list if name == "list" else _tail)

    s = verbs.add_parser("stats", help="counts by reason, entity and policy version; oldest and newest record")
    _common(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds to read the whole topic")
    s.set_defaults(handler=_stats)

    w = verbs.add_parser(
        "show", help="one record's metadata; with --decrypt its original payload (recorded in the audit topic)",
        description="Print the metadata of the record at --offset PARTITION:OFFSET of the quarantine topic. "
                    "--decrypt opens the sealed original with the jurisdiction's key from the config's key "
                    "providers and prints it, after writing an access record (OS user, --actor, host, time, "
                    "record) to the audit topic. " + _ACL_NOTE,
    )
    _common(w)
    w.add_argument("--offset", required=True, metavar="PARTITION:OFFSET", help="the record, as 'list' prints it")
    w.add_argument("--decrypt", action="store_true", help="open and print the original payload (audited)")
    w.add_argument("--actor", help="who the access is for (recorded with the OS user), e.g. a ticket or a name")
    w.add_argument("--public-keys", help="JSON from `residency-router keys show --json` (default: the signer keyring)")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    w.set_defaults(handler=_show)

    r = verbs.add_parser(
        "replay", help="route quarantined records that the current config can route (exactly once, audited)",
        description="Open each record of quarantine.<J> (the jurisdiction's key), decide it again with the current "
                    "config exactly as `run` would, and write the routable ones to their destinations with an "
                    "audit record linking the quarantine record; the others stay, and the summary says why. "
                    "Runs in consumer group <pipeline.group_id>.replay.<J> with transactional id "
                    "<pipeline.transactional_id_prefix>-replay-<J>, up to the end offsets it sees at start. "
                    "Needs what `run` needs (keys, write access to the destinations and the audit topic) plus read "
                    "access to the quarantine topic (docs/operations.md, Replay).",
    )
    _common(r)
    r.add_argument("--reason", action="append", metavar="R",
                   help="only records quarantined with this reason code (repeat for several); the others are "
                        "passed over and not read again unless --from-beginning")
    r.add_argument("--dry-run", action="store_true",
                   help="decide and report per reason and destination; no producer, no offset committed")
    r.add_argument("--from-beginning", action="store_true",
                   help="read the whole topic again (records already replayed are recognised by their audit link)")
    r.add_argument("--batch-size", type=int, default=None, help="records per batch (default: pipeline.batch_size)")
    r.add_argument("--progress-every", type=int, default=10_000, metavar="N",
                   help="without a terminal, a progress line on stderr every N records (0: none)")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(handler=_replay)


# -- shared ------------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str]:
    """The config, client properties and quarantine topic of ``--jurisdiction``, the connection
    checked (:func:`router.kafka_read.check_connection`)."""
    from router.config.loader import load_config  # noqa: PLC0415 (keep --help fast)
    from router.errors import ConfigError  # noqa: PLC0415
    from router.kafka_read import check_connection  # noqa: PLC0415

    config = load_config(args.config)
    j = args.jurisdiction
    if j not in config.jurisdictions:
        known = ", ".join(sorted(config.jurisdictions))
        raise ConfigError(f"--jurisdiction: {j!r} is not under 'jurisdictions' in {args.config} (known: {known})")
    if config.policy is None:
        raise ConfigError(f"{args.config} has no 'policy' section: policy.quarantine_topic names the quarantine topics")
    cluster = config.clusters.get("default")
    if cluster is None:
        raise ConfigError("quarantine commands read the cluster named 'default': add clusters.default to the config")
    props: dict[str, Any] = dict(cluster.client_properties())
    if args.bootstrap:
        props["bootstrap.servers"] = args.bootstrap
    check_connection(props)  # a cluster refusing the client's TLS or authentication: exit 2 naming the setting
    topic = config.policy.quarantine_topic.format(jurisdiction=j, entity="")
    return config, props, topic


def _filter(args: argparse.Namespace) -> Any:
    from router.quarantine.reader import Filter, parse_reason, parse_since  # noqa: PLC0415

    reason = parse_reason(args.reason) if args.reason else None
    since = parse_since(args.since, now_ms=int(time.time() * 1000)) if args.since else None
    return Filter(reason, since)


def _emit(entry: Any, as_json: bool) -> None:
    from router.quarantine.reader import entry_json, entry_line  # noqa: PLC0415

    print(json.dumps(entry_json(entry)) if as_json else entry_line(entry), flush=True)


# -- list / tail / stats -----------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from router.quarantine.reader import read_quarantine  # noqa: PLC0415

    keep = _filter(args)
    _config, props, topic = _setup(args)
    shown = read = 0
    for entry in read_quarantine(props, topic, since_ms=keep.since_ms, timeout=args.timeout):
        read += 1
        if keep(entry):
            shown += 1
            _emit(entry, args.json)
    print(f"{shown} of {read} records read from {topic}", file=sys.stderr)
    return 0


def _tail(args: argparse.Namespace) -> int:
    from router.quarantine.reader import read_quarantine  # noqa: PLC0415

    keep = _filter(args)
    _config, props, topic = _setup(args)

    def ready(starts: dict[int, int]) -> None:
        where = ", ".join(f"{p}:{o}" for p, o in sorted(starts.items()))
        origin = "--since" if keep.since_ms is not None else "the end"
        print(f"following {topic} from {origin} ({where})", file=sys.stderr, flush=True)

    try:
        for entry in read_quarantine(props, topic, since_ms=keep.since_ms, follow=True,
                                     from_end=keep.since_ms is None, max_idle_s=args.max_idle_s, on_ready=ready):
            if keep(entry):
                _emit(entry, args.json)
    except KeyboardInterrupt:
        pass  # interrupting is how tail ends
    return 0


def _stats(args: argparse.Namespace) -> int:
    from router.quarantine.reader import QuarantineStats, read_quarantine  # noqa: PLC0415

    _config, props, topic = _setup(args)
    stats = QuarantineStats()
    for entry in read_quarantine(props, topic, timeout=args.timeout):
        stats.add(entry)
    if args.json:
        print(json.dumps({"topic": topic, **stats.to_json()}))
    else:
        print("\n".join(stats.lines(topic)))
    return 0


# -- replay --------------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    """Exit 0 when the replay reached the end offsets it started with, 1 when it stopped before
    (SIGTERM, Ctrl-C: what it committed stays; run it again), 2 for a config or cluster error."""
    from pathlib import Path  # noqa: PLC0415

    from router.config.loader import load_config  # noqa: PLC0415
    from router.quarantine.replay import ReplayOptions, replay  # noqa: PLC0415

    config = load_config(args.config)
    summary = replay(config, ReplayOptions(
        jurisdiction=args.jurisdiction, reasons=args.reason, dry_run=args.dry_run,
        from_beginning=args.from_beginning, bootstrap=args.bootstrap, config_dir=Path(args.config).resolve().parent,
        batch_size=args.batch_size, progress_every=args.progress_every,
    ))
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        print("\n".join(summary.lines()))
    return 0 if summary.complete else 1


# -- show ----------------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from router.quarantine.reader import entry_json, entry_show, parse_position, read_one  # noqa: PLC0415

    partition, offset = parse_position(args.offset)
    config, props, topic = _setup(args)
    if args.decrypt:
        _decrypt_preflight(args, config)
    entry, _value, _headers = read_one(props, topic, partition, offset)
    if not args.decrypt:
        if args.json:
            print(json.dumps(entry_json(entry)))
        else:
            print("\n".join(entry_show(entry)))
        return 0
    plaintext, access = _decrypt(args, config, props, topic, entry)
    try:
        text: str | None = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if args.json:
        payload: Any
        try:
            payload = json.loads(plaintext)
        except ValueError:
            payload = {"base64": base64.b64encode(plaintext).decode()} if text is None else {"text": text}
        print(json.dumps({**entry_json(entry), "payload": payload,
                          "access_record": {"topic": access[0], "partition": access[1], "offset": access[2]}}))
    else:
        print("\n".join(entry_show(entry)))
        print(f"access recorded: {access[0]}[{access[1]}]@{access[2]}")
        print("payload:" if text is not None else "payload (base64):")
        print(text if text is not None else base64.b64encode(plaintext).decode())
    return 0


def _decrypt_preflight(args: argparse.Namespace, config: Any) -> None:
    """Settings --decrypt needs, checked before anything is read."""
    from router.errors import ConfigError  # noqa: PLC0415

    if config.keys is None:
        raise ConfigError(f"--decrypt needs the 'keys' section of {args.config} (the jurisdiction's key)")
    if args.jurisdiction not in config.keys.jurisdictions:
        raise ConfigError(f"--decrypt: jurisdiction {args.jurisdiction!r} has no key under keys.jurisdictions")
    if config.audit is None:
        raise ConfigError(f"--decrypt needs the 'audit' section of {args.config}: the access is recorded in the "
                          "audit topic before anything is printed")


def _public_keys(args: argparse.Namespace, config: Any) -> Any:
    if args.public_keys:
        from pathlib import Path  # noqa: PLC0415

        from router.keys.protocol import StaticPublicKeys  # noqa: PLC0415

        return StaticPublicKeys.from_show_json(json.loads(Path(args.public_keys).read_text(encoding="utf-8")))
    from router.keys.factory import build_public_keys  # noqa: PLC0415

    return build_public_keys(config.keys)


def _decrypt(args: argparse.Namespace, config: Any, props: dict[str, Any], topic: str,
             entry: Any) -> tuple[bytes, tuple[str, int, int]]:
    """Open the sealed original, record the access, return the plaintext and where the access
    record went. Raises before anything is printed when the key cannot open the record or the
    access cannot be recorded."""
    from router import __version__  # noqa: PLC0415
    from router.keys.errors import KeyUnavailable  # noqa: PLC0415
    from router.quarantine.access import AccessRecord, host_name, os_user, write_access  # noqa: PLC0415
    from router.quarantine.reader import QuarantineReadError  # noqa: PLC0415
    from router.quarantine.sealed import CannotOpen, PayloadNotKept, build_opener, open_payload  # noqa: PLC0415

    j, where = args.jurisdiction, f"{entry.partition}:{entry.offset}"
    rec = entry.record
    if rec is None:
        raise QuarantineReadError(f"--offset: the record at {where} of {topic} does not decode ({entry.error})")
    try:
        plaintext = open_payload(build_opener(config.keys, _public_keys(args, config)), rec, topic=topic,
                                 partition=entry.partition, offset=entry.offset, jurisdiction=j)
    except PayloadNotKept as err:
        raise QuarantineReadError(f"--decrypt: {err}") from None
    except CannotOpen as err:
        raise QuarantineReadError(f"--decrypt: {err}; nothing was disclosed") from None
    except KeyUnavailable as err:
        raise QuarantineReadError(f"--decrypt: the key of {j!r} is unavailable: {err}; nothing was disclosed") from None
    access = AccessRecord(
        action="decrypt",
        accessed_at_ms=int(time.time() * 1000),
        os_user=os_user(),
        actor=args.actor,
        host=host_name(),
        jurisdiction=j,
        quarantine_topic=topic,
        quarantine_partition=entry.partition,
        quarantine_offset=entry.offset,
        source_topic=rec.source_topic,
        source_partition=rec.source_partition,
        source_offset=rec.source_offset,
        reason=rec.reason,
        event_id=rec.event_id,
        payload_digest=rec.payload_sha256,
        router_version=__version__,
    )
    audit_topic = config.audit.topic
    partition, offset = write_access(props, audit_topic, access)  # raises: nothing is printed
    return plaintext, (audit_topic, partition, offset)
