"""Build the optional native accelerators (issue 13, ADR 0012).

Every C source named ``depository/<package>/_c*.c`` becomes the extension module
``depository.<package>._c*``. Each has a pure-Python twin that is the specification
(the tests compare the two on the same inputs); the package works, more slowly, when an
extension is absent or disabled with ``DEPOSITORY_NATIVE=0``. SHA-256 comes from
OpenSSL's libcrypto (Debian ``libssl-dev``), the library ``hashlib`` already uses.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Extension, setup

_ROOT = Path(__file__).parent
# Libraries beyond libcrypto, per package: the verifier steps SQLite statements from C
# (Debian libsqlite3-dev, the library Python's sqlite3 module already uses).
_MORE_LIBS = {"verifier": ["sqlite3"]}


def _extensions() -> list[Extension]:
    out = []
    for src in sorted((_ROOT / "depository").glob("*/_c*.c")):
        rel = src.relative_to(_ROOT)
        out.append(Extension(
            ".".join(rel.with_suffix("").parts),
            [rel.as_posix()],
            libraries=["crypto", *_MORE_LIBS.get(rel.parts[1], [])],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit",
                                "-fno-strict-aliasing"],
        ))
    return out


setup(ext_modules=_extensions())
