"""``depository serve``: the HTTP API on uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from depository.cli._store import signer_option, store_option
from depository.store import ConfigError, Store, StoreError


@click.command()
@store_option
@signer_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on.")
@click.option("--public-tiles", is_flag=True,
              help="Serve /checkpoint and hash tiles without a token (entry bundles still "
                   "need an auditor, admin or store-wide legal token).")
@click.option("--upload-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Abandon an upload when no body bytes arrive for this many seconds.")
@click.option("--exports-dir", envvar="DEPOSITORY_EXPORTS_DIR", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where evidence packages exported over HTTP are kept (default "
                   "STORE/exports; or DEPOSITORY_EXPORTS_DIR).")
@click.option("--evidence-key", envvar="DEPOSITORY_EVIDENCE_KEY", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Evidence signing key for exported packages (as `evidence export`; or "
                   "DEPOSITORY_EVIDENCE_KEY).")
@click.option("--tsa-url", envvar="DEPOSITORY_TSA_URL", default=None,
              help="RFC 3161 timestamp authority for exported packages (or "
                   "DEPOSITORY_TSA_URL).")
@click.option("--organisation", envvar="DEPOSITORY_ORGANISATION", default=None,
              help="Source organisation named in exported packages' bag-info.txt (or "
                   "DEPOSITORY_ORGANISATION).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="HTTP worker processes. 1 serves everything in this process; N >= 2 "
                   "runs N workers on the same port that parse, authenticate, validate and "
                   "hash, and hand each write to this process's single writer (a 2xx still "
                   "means durable). See docs/adr/0005-serve-workers.md.")
@click.option("--load-results", envvar="DEPOSITORY_LOAD_RESULTS", default=None,
              type=click.Path(path_type=Path),
              help="A load test's results.json (or its directory) whose scale-limit figures "
                   "the dashboard at /ui charts (or DEPOSITORY_LOAD_RESULTS).")
@click.option("--certification-report", envvar="DEPOSITORY_CERTIFICATION_REPORT",
              default=None, type=click.Path(path_type=Path),
              help="The signed certification report (PDF) whose verdict and validity the "
                   "dashboard at /ui shows, verified with the store's log key (or "
                   "DEPOSITORY_CERTIFICATION_REPORT).")
@click.option("--certification-trust", envvar="DEPOSITORY_CERTIFICATION_TRUST", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="CA certificate (PEM) the report's PDF signer must chain to; without it "
                   "the dashboard says the signer was not checked against a trust anchor.")
@click.option("--header-timeout", envvar="DEPOSITORY_HEADER_TIMEOUT", default=10.0,
              show_default=True, type=click.FloatRange(min=0),
              help="Close a connection whose request headers have not all arrived this many "
                   "seconds after it opened (or after its previous response); 0 turns it "
                   "off. Or DEPOSITORY_HEADER_TIMEOUT.")
@click.option("--max-connections", envvar="DEPOSITORY_MAX_CONNECTIONS", default=4096,
              show_default=True, type=click.IntRange(min=0),
              help="Open connections per server process; when full, the connection waiting "
                   "longest for its headers is closed to make room (0: no cap; lowered to "
                   "what the open-files limit allows). Or DEPOSITORY_MAX_CONNECTIONS.")
@click.option("--max-connections-per-address", envvar="DEPOSITORY_MAX_CONNECTIONS_PER_ADDRESS",
              default=256, show_default=True, type=click.IntRange(min=0),
              help="Open connections per client IP address and server process; more are "
                   "answered 503 (0: no cap, e.g. behind a reverse proxy). Or "
                   "DEPOSITORY_MAX_CONNECTIONS_PER_ADDRESS.")
@click.option("--max-header-bytes", envvar="DEPOSITORY_MAX_HEADER_BYTES", default=64 * 1024,
              show_default=True, type=click.IntRange(min=0),
              help="Size limit of one request's request line and headers; more is answered "
                   "431 and the connection closed (0: no limit). Or "
                   "DEPOSITORY_MAX_HEADER_BYTES.")
@click.option("--node-id", envvar="DEPOSITORY_NODE_ID", default=None,
              help="Run as one node of several on a PostgreSQL store (ADR 0014): this node's "
                   "name, unique in the cluster. One node at a time is the sequencer (it "
                   "appends and signs); the others forward writes to it and serve reads. Or "
                   "DEPOSITORY_NODE_ID.")
@click.option("--advertise", envvar="DEPOSITORY_ADVERTISE", default=None, metavar="HOST:PORT",
              help="With --node-id: the peer address this node listens on while it is the "
                   "sequencer, as the other nodes reach it (or DEPOSITORY_ADVERTISE).")
@click.option("--peer-secret", envvar="DEPOSITORY_PEER_SECRET", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="With --node-id: a file with the secret every node of the cluster shares "
                   "(>= 16 bytes); peers prove they hold it before forwarding writes (or "
                   "DEPOSITORY_PEER_SECRET).")
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(store_dir: Path, signer_key: Path | None, host: str, port: int, public_tiles: bool,
          upload_timeout: float, exports_dir: Path | None, evidence_key: Path | None,
          tsa_url: str | None, organisation: str | None, workers: int, header_timeout: float,
          max_connections: int, max_connections_per_address: int, max_header_bytes: int,
          load_results: Path | None, certification_report: Path | None,
          certification_trust: Path | None, node_id: str | None, advertise: str | None,
          peer_secret: Path | None, access_log: bool, log_level: str) -> None:
    """Serve the store over HTTP until interrupted (SIGINT or SIGTERM).

    The store's writer runs in this process, which holds the store's writer lock: stop
    the server before running CLI commands that write. Shutdown is graceful: requests
    in progress finish, the writer drains, and a final checkpoint is signed.

    With --workers N (N >= 2) this process keeps the writer and N worker processes
    serve HTTP on the same port; a worker that dies is restarted, and workers exit when
    this process does. Writes reach the writer over STORE/.writer.sock (mode 0600).

    \b
    The read-only dashboard is at http://HOST:PORT/ui (sign in with a token; with
    --workers 1 only, as its sessions live in one process).

    \b
    Example:
      depository token create --store ./store --role writer --product gurukul
      depository serve --store ./store --port 8000
      # the dashboard with load results and the signed certification report:
      depository serve --store ./store --load-results loadtest-certify/results.json \\
          --certification-report cert/report.pdf --certification-trust ca.pem
      curl -X PUT -H "Authorization: Bearer $TOKEN" \\
          -H 'Depository-Metadata: {"course": "algebra"}' \\
          --data-binary @l1.pdf http://127.0.0.1:8000/v1/products/gurukul/artifacts/l1.pdf
      # the same with 2 HTTP worker processes in front of the one writer:
      depository serve --store ./store --port 8000 --workers 2
      # behind a reverse proxy (every connection from its address), tighter headers:
      depository serve --store ./store --max-connections-per-address 0 --header-timeout 5
      # two nodes on one PostgreSQL store (engine: postgresql in depository.yaml):
      depository serve --store ./store --port 8001 --node-id a \\
          --advertise 127.0.0.1:7401 --peer-secret peer.secret
      depository serve --store ./store --port 8002 --node-id b \\
          --advertise 127.0.0.1:7402 --peer-secret peer.secret
    """
    from depository.service import (
        EXPORTS_DIR,
        ConnectionLimits,
        ExportSettings,
        create_app,
        run,
    )

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        if node_id is not None:
            store = _open_node(store_dir, signer_key, node_id, advertise, peer_secret, workers)
        else:
            store = Store.open(store_dir, signer_key_file=signer_key)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if workers > 1:
        _serve_workers(store, store_dir, host=host, port=port, workers=workers,
                       options={"public_tiles": public_tiles, "upload_timeout": upload_timeout,
                                "exports_dir": str(exports_dir or store_dir / EXPORTS_DIR),
                                "evidence_key": str(evidence_key) if evidence_key else None,
                                "tsa_url": tsa_url or None,
                                "organisation": organisation or None,
                                "header_timeout": header_timeout,
                                "max_connections": max_connections,
                                "max_connections_per_address": max_connections_per_address,
                                "max_header_bytes": max_header_bytes,
                                "access_log": access_log, "log_level": log_level})
        return
    try:
        exports = ExportSettings(directory=exports_dir or store_dir / EXPORTS_DIR,
                                 evidence_key_file=evidence_key, tsa_url=tsa_url or None,
                                 organisation=organisation or None)
        try:
            app = create_app(store, public_tiles=public_tiles, run_checks=node_id is None,
                             upload_idle_timeout=upload_timeout, exports=exports,
                             load_results=load_results,
                             certification_report=certification_report,
                             certification_trust=certification_trust)
        except ConfigError as exc:  # alerting / schedule / monitoring settings
            raise click.UsageError(f"{store_dir}/depository.yaml: {exc}") from exc
        limits = ConnectionLimits(header_timeout, max_connections,
                                  max_connections_per_address, max_header_bytes)
        describe = getattr(store.writer, "describe", None)  # a cluster node says its role
        click.echo(f"serving {store_dir} (origin {store.origin}) on http://{host}:{port}"
                   + (f" as {describe()}" if describe is not None else ""), err=True)
        run(app, host=host, port=port, limits=limits, access_log=access_log,
            log_level=log_level)
    finally:
        store.close()  # drains the writer and signs a final checkpoint


def _open_node(store_dir: Path, signer_key: Path | None, node_id: str,
               advertise: str | None, peer_secret: Path | None, workers: int) -> Store:
    if advertise is None or peer_secret is None:
        raise click.UsageError("--node-id needs --advertise HOST:PORT and --peer-secret FILE")
    if workers > 1:
        raise click.UsageError("--node-id runs one process per node; start more nodes "
                               "instead of --workers")
    from depository.store.cluster import open_node  # imports psycopg: only for nodes

    try:
        secret = peer_secret.read_bytes().strip()
    except OSError as exc:
        raise click.UsageError(f"--peer-secret {peer_secret}: {exc.strerror}") from None
    return open_node(store_dir, node_id=node_id, advertise=advertise, secret=secret,
                     signer_key_file=signer_key)


def _serve_workers(store: Store, store_dir: Path, *, host: str, port: int, workers: int,
                   options: dict[str, object]) -> None:
    from depository.service import run_parent
    from depository.service.operations import start_background

    def listening(bound: int) -> None:
        click.echo(f"serving {store_dir} (origin {store.origin}) on http://{host}:{bound} "
                   f"with {workers} worker processes", err=True)

    try:
        stop_checks = start_background(store)  # scheduled checks and alerts, here, once
    except ConfigError as exc:
        store.close()
        raise click.UsageError(f"{store_dir}/depository.yaml: {exc}") from exc
    try:
        run_parent(store, host=host, port=port, workers=workers, worker_options=options,
                   on_listening=listening)
    finally:
        stop_checks()
        store.close()  # drains the writer and signs a final checkpoint
