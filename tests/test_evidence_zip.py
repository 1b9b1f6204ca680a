"""The evidence package's streaming zip writer against independent zip readers."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from depository.evidence._zip import StreamingZip

DT = (2027, 3, 1, 12, 0, 0)


def _write(path: Path, entries: list[tuple[str, bytes, int | None]]) -> None:
    with open(path, "xb") as out, open(path.with_suffix(".spool"), "w+b") as spool:
        z = StreamingZip(out, spool, date_time=DT)
        for name, data, hint in entries:
            with z.open(name, hint) as e:
                for i in range(0, len(data), 7000):
                    e.write(data[i:i + 7000])
        z.close()


def test_entries_round_trip_through_zipfile_and_unzip(tmp_path: Path) -> None:
    blob = os.urandom(200_000)
    entries = [
        ("bag/bagit.txt", b"BagIt-Version: 1.0\n", 19),
        ("bag/data/empty", b"", 0),
        ("bag/data/random.bin", blob, len(blob)),
        ("bag/data/unknown-size.txt", b"text " * 50_000, None),  # ZIP64 local header
        ("bag/data/ünïcode name.txt", "é".encode() * 10, 20),
    ]
    path = tmp_path / "a.zip"
    _write(path, entries)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [n for n, _, _ in entries]
        for name, data, _ in entries:
            assert zf.read(name) == data
            info = zf.getinfo(name)
            assert info.date_time == DT and info.external_attr >> 16 == 0o100644
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", str(path)], check=True, capture_output=True)


def test_many_entries_use_zip64_end_records(tmp_path: Path) -> None:
    n = 70_000  # more than a classic zip's 65,535 entries
    path = tmp_path / "many.zip"
    _write(path, [(f"d/{i:06d}", str(i).encode(), 8) for i in range(n)])
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert len(infos) == n
        assert zf.read("d/069999") == b"69999"


def test_one_entry_at_a_time(tmp_path: Path) -> None:
    with open(tmp_path / "x.zip", "xb") as out, open(tmp_path / "s", "w+b") as spool:
        z = StreamingZip(out, spool, date_time=DT)
        with pytest.raises(RuntimeError), z.open("a", 1), z.open("b", 1):
            pass
