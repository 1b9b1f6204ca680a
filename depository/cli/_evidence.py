"""``depository evidence export``: a thin client of :mod:`depository.evidence`."""

from __future__ import annotations

from pathlib import Path

import click

from depository.cli._store import (
    _actor,
    _emit,
    _fail,
    _open,
    _time_arg,
    actor_option,
    json_option,
    signer_option,
    store_option,
)
from depository.evidence import DEFAULT_INDEX_LIMIT, EvidenceError, export_package

_EXIT = "Exit codes: 0 exported; 1 refused or failed (nothing written at --out); 2 bad usage."


@click.group(epilog=_EXIT)
def evidence() -> None:
    """Evidence packages for legal: self-contained and verifiable offline.

    \b
    Example:
      depository evidence export --store ./store --matter M-1 --reason "subpoena 24-17" \\
          --out case.zip
    """


@evidence.command("export", epilog=_EXIT)
@store_option
@signer_option
@click.option("--matter", required=True, help="Matter id (recorded; selects its holds).")
@click.option("--reason", required=True,
              help="Why the package is exported (recorded in the log and the custody log).")
@click.option("--product", help="Product to export (needed if the matter spans several).")
@click.option("--from", "since", help="Only artifacts created at or after (RFC 3339 or date).")
@click.option("--to", "until", help="Only artifacts created before (RFC 3339 or date).")
@click.option("--artifact", "artifacts", multiple=True,
              help="Export these artifact ids (repeatable) instead of the matter's holds.")
@click.option("--hold", "holds", multiple=True,
              help="Export the artifacts under this hold of the matter (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="case.zip for a zip of the bag, any other path for a bag directory; "
              "must not exist.")
@click.option("--load-file", type=click.Choice(["dat"]),
              help="Also write a load file for e-discovery platforms (Concordance DAT).")
@click.option("--evidence-key", "evidence_key_file", envvar="DEPOSITORY_EVIDENCE_KEY",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Evidence signer key (default STORE/keys/evidence.key, created on first "
              "export; or DEPOSITORY_EVIDENCE_KEY).")
@click.option("--organisation", envvar="DEPOSITORY_ORGANISATION",
              help="Source organisation for bag-info.txt (default: the log origin).")
@click.option("--tsa", "tsa_url", envvar="DEPOSITORY_TSA_URL",
              help="RFC 3161 timestamp authority URL (or DEPOSITORY_TSA_URL); the tag "
              "manifest is timestamped when set.")
@click.option("--tsa-timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds to wait for the timestamp authority.")
@click.option("--index-limit", type=click.IntRange(min=0), default=DEFAULT_INDEX_LIMIT,
              show_default=True, help="Items listed one by one in index.pdf (all are in "
              "items.jsonl).")
@actor_option
@json_option
def export(
    store_dir: Path, signer_key: Path | None, matter: str, reason: str, product: str | None,
    since: str | None, until: str | None, artifacts: tuple[str, ...], holds: tuple[str, ...],
    out: Path, load_file: str | None, evidence_key_file: Path | None,
    organisation: str | None, tsa_url: str | None, tsa_timeout: float, index_limit: int,
    actor: str | None, as_json: bool,
) -> None:
    """Export a matter's evidence package (BagIt) with proofs and chain of custody.

    By default the package holds the artifacts under the matter's legal holds (released
    or not); --hold, --artifact or --product (with --from/--to) choose otherwise. One
    package holds one product. Disposed artifacts appear as their records and disposal
    record. The export is recorded in the store's audit log and proven in the package.
    Give the recipient the package and the log verifier key (`depository vkey`).

    \b
    Example:
      depository evidence export --store ./store --matter M-1 --reason "subpoena 24-17" \\
          --product gurukul --load-file dat --out case-M-1.zip
      python -m depository.verifier package case-M-1.zip --key log.vkey
    """
    lo = _time_arg(since, "--from")
    hi = _time_arg(until, "--to")
    with _open(store_dir, signer_key=signer_key) as store:
        try:
            result = export_package(
                store, matter=matter, out=out, reason=reason, actor=_actor(actor),
                product=product, since=lo, until=hi, artifact_ids=artifacts, hold_ids=holds,
                evidence_key_file=evidence_key_file, organisation=organisation,
                load_file=load_file, tsa_url=tsa_url, tsa_timeout=tsa_timeout,
                index_limit=index_limit,
                progress=None if as_json else (lambda m: click.echo(f"export: {m}", err=True)),
            )
        except EvidenceError as exc:
            raise _fail(exc) from exc

    def human() -> None:
        click.echo(f"wrote {result.path}: matter {result.matter}, product {result.product}, "
                   f"{result.artifacts} artifacts ({result.disposed} disposed), "
                   f"{result.records} records, {result.holds} holds")
        click.echo(f"export recorded at log index {result.log_index}, checkpoint size "
                   f"{result.checkpoint_size}" + (", timestamped" if result.timestamped else ""))
        click.echo(f"evidence key: {result.evidence_key}")
        click.echo(f"verify: python -m depository.verifier package {result.path} "
                   "--key log.vkey")

    _emit(result.to_json(), as_json, human)
