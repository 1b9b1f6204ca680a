"""``python -m depository.verifier``: the auditor's offline verifier.

Needs only the standard library, ``cryptography`` and ``rfc8785``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from depository.verifier import commands as cmd

_EPILOG = f"""\
{cmd.EXIT_CODES_HELP}

Examples:
  python -m depository.verifier inclusion --index 3 --size 8 --root HASH \\
      --leaf-hash HASH --proof proof.txt
  python -m depository.verifier consistency --size1 4 --size2 8 --root1 H1 --root2 H2 \\
      --proof proof.txt
  python -m depository.verifier note checkpoint.txt --key log.vkey
  python -m depository.verifier proof leaf-7.tlog-proof --leaf leaf-7.json --key log.vkey
  python -m depository.verifier store ./store --key log.vkey --since-checkpoint saved.txt
  python -m depository.verifier package case.zip --key log.vkey
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(cmd.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m depository.verifier",
        description="Verify Depository logs, proofs and signed notes offline.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def add(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name, help=help_, description=help_,
            epilog=f"Example:\n  {example}\n\n{cmd.EXIT_CODES_HELP}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    sp = add(
        "inclusion", "Verify an RFC 6962 inclusion proof.",
        "python -m depository.verifier inclusion --index 3 --size 8 --root HASH "
        "--leaf leaf.json --proof proof.txt",
    )
    sp.add_argument("--index", type=int, required=True, help="0-based leaf index")
    sp.add_argument("--size", type=int, required=True, help="tree size")
    sp.add_argument("--root", required=True, help="tree root (hex or base64)")
    sp.add_argument("--proof", required=True, help="file with one hash per line, or -")
    sp.add_argument("--leaf", help="file with the leaf's exact bytes")
    sp.add_argument("--leaf-hash", help="the leaf hash (hex or base64) instead of --leaf")

    sp = add(
        "consistency", "Verify an RFC 6962 consistency proof between two tree sizes.",
        "python -m depository.verifier consistency --size1 4 --size2 8 --root1 H1 "
        "--root2 H2 --proof proof.txt",
    )
    sp.add_argument("--size1", type=int, required=True)
    sp.add_argument("--size2", type=int, required=True)
    sp.add_argument("--root1", required=True, help="root of the smaller tree")
    sp.add_argument("--root2", required=True, help="root of the larger tree")
    sp.add_argument("--proof", required=True, help="file with one hash per line, or -")

    sp = add(
        "note", "Verify a C2SP signed note (for example a checkpoint).",
        "python -m depository.verifier note checkpoint.txt --key log.vkey",
    )
    sp.add_argument("file", help="the signed note, or -")
    sp.add_argument("--key", action="append", default=[], required=True,
                    help="trusted verifier key, or a file of keys (repeatable)")

    sp = add(
        "proof", "Verify a C2SP tlog-proof@v1 file for a leaf.",
        "python -m depository.verifier proof leaf.tlog-proof --leaf leaf.json --key log.vkey",
    )
    sp.add_argument("file", help="the tlog-proof file, or -")
    sp.add_argument("--key", action="append", default=[], required=True,
                    help="trusted verifier key, or a file of keys (repeatable)")
    sp.add_argument("--leaf", help="file with the leaf's exact bytes")
    sp.add_argument("--leaf-hash", help="the leaf hash (hex or base64) instead of --leaf")
    sp.add_argument("--origin", help="require this checkpoint origin")

    sp = add(
        "store",
        "Replay a whole store directory: every record, tree node, signed checkpoint, "
        "derived table row and blob, checked against the key you trust.",
        "python -m depository.verifier store ./store --key log.vkey "
        "--since-checkpoint saved-checkpoint.txt --jobs 4",
    )
    sp.add_argument("dir", help="the store directory (holds depository.db)")
    sp.add_argument("--key", action="append", default=[],
                    help="the verifier key you trust, or a file of keys (repeatable; "
                         "required: the store's own key file is never trusted)")
    sp.add_argument("--since-checkpoint", metavar="FILE",
                    help="a signed checkpoint you saved earlier: the store must extend it "
                         "(catches a rolled-back or rewritten store)")
    sp.add_argument("--jobs", type=int, default=1,
                    help="worker processes for hashing (default 1)")
    sp.add_argument("--no-blobs", action="store_true",
                    help="skip re-hashing artifact bytes (faster; blobs unchecked)")
    sp.add_argument("--save-checkpoint", metavar="FILE",
                    help="if verified, write the latest checkpoint here for next time")
    sp.add_argument("--anchors", action="append", default=[], metavar="DIR",
                    help="a local directory of checkpoints anchored in WORM storage "
                         "(repeatable); every one must be consistent with the store "
                         "(for s3:// anchors use `depository verify store`)")

    sp = add(
        "package",
        "Verify an evidence package (a zip or a bag directory): BagIt manifests, every "
        "record's inclusion proof, every artifact's bytes, custody log and signature.",
        "python -m depository.verifier package case.zip --key log.vkey",
    )
    sp.add_argument("path", help="the package: a .zip or the bag directory")
    sp.add_argument("--key", action="append", default=[], required=True,
                    help="the log verifier key you trust, or a file of keys (repeatable)")
    sp.add_argument("--evidence-key", action="append", default=[],
                    help="pin the evidence key (key or file; repeatable; default: the key "
                         "the log-signed export record names)")
    sp.add_argument("--tsa-cert", action="append", default=[],
                    help="trusted RFC 3161 TSA certificate file, PEM or DER (repeatable)")
    return p


def _dispatch(args: argparse.Namespace) -> cmd.Outcome:
    if args.verb == "inclusion":
        return cmd.inclusion(
            index=cmd.check_int(args.index, "--index"), size=cmd.check_int(args.size, "--size"),
            root=args.root, proof_file=args.proof, leaf_file=args.leaf,
            leaf_hash=args.leaf_hash,
        )
    if args.verb == "consistency":
        return cmd.consistency(
            size1=cmd.check_int(args.size1, "--size1"),
            size2=cmd.check_int(args.size2, "--size2"),
            root1=args.root1, root2=args.root2, proof_file=args.proof,
        )
    if args.verb == "note":
        return cmd.note(note_file=args.file, keys=args.key)
    if args.verb == "proof":
        return cmd.proof(
            proof_file=args.file, keys=args.key, leaf_file=args.leaf,
            leaf_hash=args.leaf_hash, origin=args.origin,
        )
    if args.verb == "store":
        return cmd.store(
            path=args.dir, keys=args.key, since_checkpoint_file=args.since_checkpoint,
            jobs=args.jobs, check_blobs=not args.no_blobs,
            progress=None if args.json else cmd.stderr_progress(),
            save_checkpoint=args.save_checkpoint,
            anchors=[a for d in args.anchors for a in cmd.read_anchor_dir(d)]
            if args.anchors else None,
        )
    if args.verb == "package":
        from depository.verifier.package import package_outcome

        return package_outcome(args.path, args.key, args.evidence_key, args.tsa_cert)
    raise cmd.UsageError(f"unknown verb {args.verb}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        outcome = _dispatch(args)
    except cmd.UsageError as exc:
        print(cmd.usage_failure(args.verb, str(exc), as_json=args.json), file=sys.stderr)
        return cmd.EXIT_USAGE
    print(cmd.render(outcome, as_json=args.json))
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
