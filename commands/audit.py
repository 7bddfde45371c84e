"""Audit commands: `verify`, `checkpoint`, `prove`, `verify-bundle`.

`verify` and `prove`/`checkpoint` open the store; `verify-bundle` never does: it
reads a bundle file and a public key only. Exit codes follow commands/errors.py,
with 4 when anything fails to verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands import options, render
from commands.errors import (
    EXIT_USAGE,
    EXIT_VERIFICATION_FAILED,
    handled,
    store_fault,
)
from commands.state import CliState
from ledger.domain.errors import StoreUnavailable

if TYPE_CHECKING:
    from ledger.audit.cosignature import WitnessVerifier
    from ledger.audit.note import Checkpoint, KeyRing, Verifier
    from ledger.auditlog.verify import VerifyReport


class ReportFormat(StrEnum):
    """What `verify --format` accepts; anything else is a usage error (exit 2)."""

    table = "table"
    json = "json"


PROGRESS_FROM = 200_000  # leaves; smaller stores verify in a blink

BundleKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        metavar="KEY",
        help="The log's verifier key (NAME+ID+BASE64, as `ledger checkpoint --public-key` "
        "prints it), or a file holding it or a PEM key; repeat per key after a rotation: "
        "the bundle's checkpoint, each earlier one it carries and --against are each "
        "checked with whichever given key signed it.",
        parser=options.path_text("--public-key", "the log's key or a file holding it"),
        show_default=False,
    ),
]

PublicKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        metavar="KEY",
        help="A verifier key of the log (NAME+ID+BASE64, as `ledger checkpoint --public-key` "
        "prints it), or a file holding it or a PEM key; repeat per key after a rotation. "
        "Each checkpoint is checked with whichever given key signed it; one signed by a "
        "key not given is reported. Default: every key the log lists.",
        parser=options.path_text("--public-key", "the log's key or a file holding it"),
        show_default=False,
    ),
]


@contextmanager
def audit_handled(state: CliState | None = None) -> Iterator[None]:
    """commands/errors.handled, plus: anything that fails to verify exits 4."""
    from eventsourcing.persistence import PersistenceError  # noqa: PLC0415

    from ledger.audit.bundle import BundleError, BundleInvalid  # noqa: PLC0415
    from ledger.audit.note import NoteError  # noqa: PLC0415
    from ledger.auditlog.proofs import AuditFailed  # noqa: PLC0415

    with handled(state):
        try:
            yield
        except PersistenceError as error:
            # Named by its cause (read-only, full, ...) when known; one line, exit 3.
            named = store_fault(error, state)
            raise named or StoreUnavailable("store", f"store unavailable: {error}") from None
        except (AuditFailed, BundleInvalid) as error:
            render.error(f"verification failed: {error}")
            raise typer.Exit(EXIT_VERIFICATION_FAILED) from None
        except (BundleError, NoteError) as error:
            render.error(str(error))
            raise typer.Exit(EXIT_USAGE) from None


def _now() -> datetime:
    return datetime.now(UTC)


# --- ledger verify ----------------------------------------------------------------------


def verify(
    ctx: typer.Context,
    public_key: PublicKeys = None,
    max_unsealed_age: Annotated[
        float | None,
        typer.Option(
            "--max-unsealed-age",
            metavar="SECONDS",
            parser=options.seconds("--max-unsealed-age", 0),
            help="Fail when an event has waited longer than this to be sealed.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        ReportFormat,
        typer.Option("--format", case_sensitive=False,
                     help="table (for people) or json (for programs)."),
    ] = ReportFormat.table,
) -> None:
    """Recompute the whole log from the stored events; exit 4 on any tampering."""
    state: CliState = ctx.obj
    with audit_handled(state):
        from ledger.auditlog.verify import verify_store  # noqa: PLC0415

        store = state.existing().store
        verifier = _store_verifier(store, public_key)
        report = _with_progress(lambda progress: verify_store(store, verifier, progress))
        late = _too_late(report, max_unsealed_age)
        if output is ReportFormat.json:
            render.out.print_json(data=_report_json(report, late), highlight=False)
        else:
            _print_report(report, late)
        if not report.ok or late:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)


def _store_verifier(store: Any, public_keys: list[str] | None) -> KeyRing | None:
    """The keys given, or every key the log has signed with (rotation keeps old ones)."""
    from ledger.auditlog.keys import KeyFileMissing, public_key_from  # noqa: PLC0415
    from ledger.auditlog.seal import current_origin  # noqa: PLC0415

    origin = current_origin(store)
    if origin is None:
        return None
    from ledger.auditlog.rotation import key_ring, trusted_ring  # noqa: PLC0415

    if public_keys:
        return trusted_ring(store, [public_key_from(key, origin) for key in public_keys])

    try:
        return key_ring(store)
    except KeyFileMissing:
        return None


def _with_progress(run: Any) -> VerifyReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

    if not render.err.is_terminal:
        result: VerifyReport = run(None)
        return result
    with Progress(
        TextColumn("verifying"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(), console=render.err, transient=True,
    ) as bar:
        task = bar.add_task("verify", total=None)

        def progress(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bar.update(task, completed=done, total=total)

        return run(progress)  # type: ignore[no-any-return]


def _too_late(report: VerifyReport, limit: float | None) -> bool:
    if limit is None or not report.unsealed or report.oldest_unsealed_at is None:
        return False
    return (_now() - report.oldest_unsealed_at).total_seconds() > limit


def _report_json(report: VerifyReport, late: bool) -> dict[str, Any]:
    import base64  # noqa: PLC0415

    first = report.first
    return {
        "ok": report.ok and not late,
        "origin": report.origin,
        "sealed": report.sealed,
        "root": base64.b64encode(report.root).decode() if report.root else None,
        "checkpoints": report.checkpoints_checked,
        "signatures_checked": report.signatures_checked,
        "unsealed": report.unsealed,
        "unsealed_after_position": report.unsealed_after,
        "oldest_unsealed_recorded_at": report.oldest_unsealed_at.isoformat()
        if report.oldest_unsealed_at else None,
        "unsealed_too_long": late,
        "first_bad_position": first.position if first else None,
        "first_damage": first.kind if first else None,
        "cosigned_size": report.cosigned_size,
        "cosigned_by": report.cosigned_by,
        "extends_cosigned": report.cosigned_extended,
        "problems": report.damage_count,
        "damage": [
            {"kind": d.kind, "position": d.position, "leaf_index": d.leaf_index,
             "detail": d.detail}
            for d in report.damage
        ],
        "seconds": round(report.seconds, 3),
    }


def _print_report(report: VerifyReport, late: bool) -> None:
    import base64  # noqa: PLC0415

    out = render.out
    rate = report.events_checked / report.seconds if report.seconds else 0.0
    if report.ok:
        root = base64.b64encode(report.root).decode() if report.root else "-"
        signatures = "signatures checked" if report.signatures_checked else (
            "signatures NOT checked: no key (pass --public-key)")
        out.print(
            f"sound: {report.sealed:,} sealed events recomputed, root {root}; "
            f"{report.checkpoints_checked} checkpoint(s) consistent ({signatures}); "
            f"{report.seconds:.2f} s ({rate:,.0f} events/s)",
            style="green", markup=False,
        )
    else:
        first = report.first
        assert first is not None
        where = (f"first bad position {first.position}" if first.position is not None
                 else "in the audit tables")
        out.print(
            f"TAMPERED: {where}: {first.kind}: {first.detail}",
            style="bold red", markup=False,
        )
        for damage in [d for d in report.damage if d is not first][:9]:
            out.print(f"  also: {damage.kind}: {damage.detail}", style="red", markup=False)
        out.print(f"{report.damage_count} problem(s) in all", style="red", markup=False)
    if report.cosigned_size is None:
        out.print("cosigned: no checkpoint cosigned by a witness yet (ledger checkpoint "
                  "--witness URL=KEY)", style="yellow", markup=False)
    else:
        verdict = "the log still extends it" if report.cosigned_extended else (
            "the log NO LONGER extends it")
        out.print(
            f"cosigned: latest checkpoint cosigned by witnesses is size "
            f"{report.cosigned_size:,} ({', '.join(report.cosigned_by)}); {verdict}",
            style="green" if report.cosigned_extended else "bold red", markup=False,
        )
    if report.unsealed:
        since = report.oldest_unsealed_at.isoformat() if report.oldest_unsealed_at else "?"
        out.print(
            f"unsealed: {report.unsealed:,} event(s) after position {report.unsealed_after} "
            f"not yet sealed (oldest recorded {since})"
            + (": longer than --max-unsealed-age" if late else ""),
            style="red" if late else "yellow", markup=False,
        )


# --- ledger checkpoint ------------------------------------------------------------------


WitnessOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        metavar="URL=WITNESS_KEY",
        help="A witness to ask for cosignatures (`ledger witness keygen` prints its key); "
        "repeat per witness. Kept once it cosigns: later checkpoints ask it too.",
        show_default=False,
        callback=options.name_values(),
    ),
]


def checkpoint(  # noqa: PLR0917 - one parameter per CLI option
    ctx: typer.Context,
    public_key: Annotated[
        bool, typer.Option("--public-key", help="Print the log's public (verifier) key only.")
    ] = False,
    export: Annotated[
        bool, typer.Option("--export", help="Print every stored checkpoint, oldest first.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE",
                     help="Also write the checkpoint to this file.",
                     parser=options.path("--out", "the file to write", dir_okay=False)),
    ] = None,
    witness: WitnessOption = None,
    forget_witness: Annotated[
        list[str] | None,
        typer.Option("--forget-witness", metavar="NAME",
                     help="Stop asking this witness (retired, or gone for good); repeatable.",
                     show_default=False),
    ] = None,
) -> None:
    """Seal the log and sign its head (size, root hash, time) with the log's Ed25519 key;
    then have every configured witness cosign it (exit 4 naming any witness that refuses)."""
    state: CliState = ctx.obj
    with audit_handled(state):
        from commands.outputs import refuse_output, write_output  # noqa: PLC0415
        from ledger.auditlog.proofs import checkpoints, make_checkpoint, store_signer  # noqa: PLC0415
        from ledger.auditlog.witnesses import (  # noqa: PLC0415
            forget_witnesses,
            http_post,
            parse_witness_option,
            request_cosignatures,
            with_given,
        )

        store = state.existing().store
        if public_key or export:
            store.ensure_readable()  # a newer version's event stops these reads as every other
        if public_key:
            render.out.print(store_signer(store).verifier.vkey, markup=False)
            return
        if export:
            for checkpoint_id, note in checkpoints(store):
                render.out.print(f"# checkpoint {checkpoint_id}", markup=False)
                render.out.print(note, markup=False, end="\n")
            return
        if out is not None:  # before anything is signed or recorded
            refuse_output(out, store)
        if forget_witness:
            forget_witnesses(store, forget_witness)
        # A witness given here is recorded only once it cosigns.
        witnesses = with_given(store, [parse_witness_option(w) for w in witness or []])
        stored = make_checkpoint(store, _now())
        cosigned = request_cosignatures(store, stored, http_post(), witnesses)
        if out is not None:
            write_output(out, cosigned.note.encode(), store)
        render.out.print(cosigned.note, markup=False, end="")
        for cosignature in cosigned.cosigned_by:
            render.err.print(f"cosigned by witness {cosignature.witness.name} at size "
                             f"{stored.signed.checkpoint.size}", style="green", markup=False)


# --- ledger prove -----------------------------------------------------------------------


def prove(
    ctx: typer.Context,
    practice: Annotated[str, typer.Argument(help="ODS code of the practice (A81001).")],
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE",
                           help="Where to write the bundle (JSON).",
                           parser=options.path("--out", "the file to write", dir_okay=False))
    ],
) -> None:
    """Write the practice's trail with an inclusion proof per event and a signed checkpoint."""
    state: CliState = ctx.obj
    with audit_handled(state):
        import orjson  # noqa: PLC0415

        from commands.outputs import refuse_output, write_output  # noqa: PLC0415
        from ledger.auditlog.proofs import prove_practice  # noqa: PLC0415
        from ledger.auditlog.witnesses import http_post, request_cosignatures  # noqa: PLC0415
        from ledger.domain.values import parse_practice_code  # noqa: PLC0415

        code = parse_practice_code(practice)
        store = state.existing().store
        refuse_output(out, store)  # before anything is sealed or signed
        post = http_post()
        bundle = prove_practice(store, code, _now(),
                                cosign=lambda stored: request_cosignatures(store, stored, post))
        write_output(out, orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n", store)
        render.out.print(
            f"wrote {out}: {len(bundle['events'])} event(s) of {code} with inclusion proofs, "
            f"checkpoint of {bundle['checkpoint'].splitlines()[1]} events",
            markup=False,
        )


# --- ledger verify-bundle ---------------------------------------------------------------


def verify_bundle(
    bundle: Annotated[Path, typer.Argument(
        help="A bundle written by `ledger prove`.",
        parser=options.path("BUNDLE", "the bundle file to check"))],
    public_key: BundleKeys = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-key",
            metavar="KEY",
            help="A witness's verifier key (or a file holding it); repeat per witness. The "
            "checkpoint must carry a valid cosignature from --quorum of them.",
            parser=options.path_text("--witness-key",
                                     "the witness's key or a file holding it"),
            show_default=False,
        ),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option("--quorum", metavar="N",
                     parser=options.whole_number("--quorum", 1, options.MAX_POSITION),
                     help="How many of the --witness-key witnesses must have cosigned, 1 or "
                     "more (default: all of them).", show_default=False),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            metavar="OLDER",
            help="An earlier bundle or checkpoint file of the same log: prove the log only "
            "grew between them.",
            parser=options.path("--against", "the earlier bundle or checkpoint file"),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a proof bundle offline: no database, only the bundle and the log's public key."""
    with audit_handled():
        from ledger.audit.bundle import (  # noqa: PLC0415
            bundle_checkpoint,
            load_bundle,
            verify_bundle,
            verify_consistency_between,
        )

        data = load_bundle(_read(bundle))
        origin = bundle_checkpoint(data).origin
        verifiers = None
        if public_key:
            from ledger.auditlog.keys import public_key_from  # noqa: PLC0415

            verifiers = [public_key_from(key, origin) for key in public_key]
        witnesses = _witness_keys(witness_key or [])
        if quorum is not None and not witnesses:
            raise _usage("--quorum needs --witness-key")
        result = verify_bundle(data, verifiers, witnesses,
                               len(witnesses) if quorum is None else quorum)
        cp = result.checkpoint
        lines = [
            f"verified: {len(result.events)} event(s) of {result.practice} are in log "
            f"{cp.origin} at size {cp.size} (signed {_time(cp)} by key "
            f"{result.verifier.key_id.hex()})"
        ]
        if witnesses:
            lines.append(
                f"cosigned: {len(result.cosignatures)} of {len(witnesses)} witness(es) vouch "
                "that this log only grew up to this checkpoint ("
                + ", ".join(f"{c.witness.name} at {_unix(c.timestamp)}"
                            for c in result.cosignatures) + ")"
            )
        if against is not None:
            _, older = _older(against, verifiers or [result.verifier])
            verify_consistency_between(data, cp, older)
            lines.append(
                f"consistent: the log at size {min(older.size, cp.size)} is a prefix of the log "
                f"at size {max(older.size, cp.size)}"
            )
        for line in lines:
            render.out.print(line, style="green", markup=False)
        unchecked = _cosignatures_not_checked(data["checkpoint"], result.verifier.key_id,
                                              checked=bool(witnesses))
        if unchecked:
            render.err.print(
                f"note: the checkpoint carries {unchecked} cosignature(s), not checked; pass "
                "--witness-key with each witness's key to check them",
                style="yellow", markup=False,
            )
        if result.key_from_bundle:
            render.err.print(
                "note: checked with the public key inside the bundle; pass --public-key with "
                "the log's key to know who signed it",
                style="yellow", markup=False,
            )


def _cosignatures_not_checked(note: str, log_key: bytes, *, checked: bool) -> int:
    """How many signatures on a verified checkpoint `note` are not the log's own and went
    unchecked (none when witness keys were given: each was checked or refused)."""
    from ledger.audit.note import split_note  # noqa: PLC0415

    if checked:
        return 0
    return sum(1 for signature in split_note(note)[1] if signature.key_id != log_key)


def _witness_keys(texts: list[str]) -> list[WitnessVerifier]:
    from ledger.audit.cosignature import parse_witness_key  # noqa: PLC0415
    from ledger.audit.note import NoteError  # noqa: PLC0415
    from ledger.domain.errors import InvalidInput  # noqa: PLC0415

    keys: list[WitnessVerifier] = []
    for text in texts:
        candidate = Path(text).expanduser()
        try:
            value = candidate.read_text(encoding="utf-8") if candidate.is_file() else text
            key = parse_witness_key(value)
        except (OSError, UnicodeDecodeError, NoteError) as error:
            raise InvalidInput("witness-key", f"unusable witness key {text[:60]!r}: {error}"
                               ) from error
        if any((k.name, k.public_key) == (key.name, key.public_key) for k in keys):
            raise InvalidInput("witness-key", f"--witness-key of witness {key.name} given "
                                              "twice: each witness counts once toward "
                                              "--quorum; give each witness's key once")
        keys.append(key)
    return keys


def _usage(message: str) -> Exception:
    from ledger.domain.errors import InvalidInput  # noqa: PLC0415

    return InvalidInput("quorum", message)


def _unix(timestamp: int) -> str:
    from ledger.audit.cosignature import cosignature_time  # noqa: PLC0415

    return cosignature_time(timestamp).isoformat()


def _time(cp: Checkpoint) -> str:
    return cp.time.isoformat() if cp.time else "at an unknown time"


def _read(path: Path) -> bytes:
    """A bundle's or checkpoint's bytes, bounded as every file the ledger reads is
    (ledger/application/files.py: a device such as /dev/zero is refused, not read
    forever); InvalidInput (rule `bundle`) when it cannot be read."""
    from ledger.application.files import read_bytes  # noqa: PLC0415
    from ledger.domain.errors import InvalidInput  # noqa: PLC0415

    try:
        return read_bytes(path)
    except InvalidInput as error:
        raise InvalidInput("bundle", error.message) from None


def _older(path: Path, verifiers: list[Verifier]) -> tuple[dict[str, Any] | None, Checkpoint]:
    """An earlier bundle (verified in full) or checkpoint note (signature verified with
    whichever of `verifiers` signed it: the log's keys over a rotation).

    A file that cannot be read as either is malformed input (NoteError, exit 2,
    naming why); a well-formed checkpoint the log's key did not sign as it reads
    is evidence of tampering (BundleInvalid, exit 4).
    """
    from ledger.audit.bundle import BundleInvalid, load_bundle, open_with_any  # noqa: PLC0415
    from ledger.audit.bundle import verify_bundle as check  # noqa: PLC0415
    from ledger.audit.note import NoteError, unverified_checkpoint  # noqa: PLC0415

    raw = _read(path)
    if raw.lstrip().startswith(b"{"):
        data = load_bundle(raw)
        return data, check(data, verifiers).checkpoint
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoteError(f"{path} is neither a bundle nor a checkpoint: not UTF-8") from error
    try:
        unverified_checkpoint(text)
    except NoteError as error:
        raise NoteError(f"{path} cannot be read as a checkpoint: {error}") from error
    try:
        return None, open_with_any(text, verifiers)
    except NoteError as error:
        raise BundleInvalid(f"{path}: {error}") from error


VERIFY_EPILOG = (
    "Examples:\n\n"
    "ledger verify\n\n"
    "ledger verify --public-key \"$(ledger checkpoint --public-key)\" --format json\n\n"
    "ledger verify --max-unsealed-age 3600   (fail when an event waited over an hour)"
)
CHECKPOINT_EPILOG = (
    "Examples:\n\n"
    "ledger checkpoint --out checkpoint.txt\n\n"
    "ledger checkpoint --public-key   (the key auditors verify with)\n\n"
    "ledger checkpoint --export > checkpoints.txt\n\n"
    "ledger checkpoint --witness http://witness-host:7380=witness.example.org/w1+700a423c+BJk…"
)
PROVE_EPILOG = (
    "Examples:\n\n"
    "ledger prove A81001 --out bundle.json"
)
VERIFY_BUNDLE_EPILOG = (
    "Examples:\n\n"
    "ledger verify-bundle bundle.json --public-key \"$(ledger checkpoint --public-key)\"\n\n"
    "ledger verify-bundle bundle.json --public-key log.pub --against checkpoint.txt\n\n"
    "ledger verify-bundle bundle.json --public-key log.pub --witness-key w1.pub "
    "--witness-key w2.pub --quorum 1"
)


def add_commands(parent: typer.Typer) -> None:
    """Add `verify`, `checkpoint`, `prove` and `verify-bundle` to the `ledger` app."""
    parent.command("verify", epilog=VERIFY_EPILOG)(verify)
    parent.command("checkpoint", epilog=CHECKPOINT_EPILOG)(checkpoint)
    parent.command("prove", epilog=PROVE_EPILOG)(prove)
    parent.command("verify-bundle", epilog=VERIFY_BUNDLE_EPILOG)(verify_bundle)
