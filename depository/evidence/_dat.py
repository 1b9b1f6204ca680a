"""Concordance DAT load files for e-discovery platforms.

The de-facto format: UTF-8 with a byte-order mark; one header line of field names, one
line per document, CR LF line ends; fields separated by DC4 (U+0014) and qualified by
``þ`` (U+00FE); a newline inside a value is written as ``®`` (U+00AE). The format has no
escape for its delimiters, so U+0014 and ``þ`` inside values become ``?`` (the exact
values are in ``items.jsonl`` and the signed records).
"""

from __future__ import annotations

from collections.abc import Sequence

BOM = "\ufeff".encode()
SEPARATOR = "\x14"
QUOTE = "\u00fe"
NEWLINE = "\u00ae"

FIELDS = (
    "DOCID", "BEGDOC", "ENDDOC", "PRODUCT", "ARTIFACTID", "FILENAME", "NATIVEPATH",
    "MEDIATYPE", "FILESIZE", "SHA256", "MD5", "DATECREATED", "TIMECREATED", "CREATEDUTC",
    "CUSTODIAN", "RETAINUNTIL", "DISPOSED", "HOLDS", "LOGINDEX", "METADATA", "PROVENANCE",
)


def _cell(value: str) -> str:
    text = value.replace(SEPARATOR, "?").replace(QUOTE, "?")
    text = text.replace("\r\n", NEWLINE).replace("\n", NEWLINE).replace("\r", NEWLINE)
    return QUOTE + text + QUOTE


def dat_line(values: Sequence[str]) -> bytes:
    """One DAT line (header or row), CR LF terminated."""
    if len(values) != len(FIELDS):
        raise ValueError(f"a DAT row has {len(FIELDS)} fields, got {len(values)}")
    return (SEPARATOR.join(_cell(v) for v in values) + "\r\n").encode("utf-8")


def dat_header() -> bytes:
    """The BOM and the header line."""
    return BOM + dat_line(FIELDS)
