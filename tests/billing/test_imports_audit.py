"""A malformed reading file is refused in the clerk's words, naming the file's own line, on both databases;
a NUL character refuses its line, not the whole file (as the admin's imports refuse only its row).

PostgreSQL is the production database: run with DATABASE_URL=postgres://… (the bulk path loads the file with
COPY there, through ``csv.reader`` on SQLite)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from billing import imports
from billing.models import MeterReading
from tests.billing.test_import_readings import OCT, current, run, serial


def _lines(customer, bad: bytes, header: bytes = b"meter_serial,period,value") -> bytes:
    return header + b"\n" + f"{serial(customer)},2025-10,150\n".encode() + bad + b"\n"


@pytest.mark.parametrize(
    ("header", "bad", "expected"),
    [
        # a line with a cell too few: the file's line 3
        (b"meter_serial,period,value,source", b"X1,2025-10", "Line 3 has 2 columns where the header has 4."),
        # a line with a cell too many
        (b"meter_serial,period,value", b"X1,2025-10,5,extra", "Line 3 has 4 columns where the header has 3."),
        # Excel's "CSV" on a Vietnamese Windows: the code page 1258, not UTF-8 ("Đà" in a note column)
        (b"meter_serial,period,value,note", b"X1,2025-10,5,\xd0\xe0", "The file is not UTF-8 text."),
    ],
    ids=["cell_too_few", "cell_too_many", "not_utf8"],
)
def test_imports_a_malformed_reading_file_is_refused_in_the_clerks_words_naming_its_line(
    make_customer, tariffs, header, bad, expected
):
    customer = make_customer()
    data = _lines(customer, bad, header=header)
    if header.endswith(b",source"):
        data = data.replace(b"2025-10,150\n", b"2025-10,150,handheld\n")
    if header.endswith(b",note"):
        data = data.replace(b"2025-10,150\n", b"2025-10,150,\n")
    with pytest.raises(ValidationError) as refused:
        run(data)
    assert refused.value.messages == [expected]
    with translation.override("vi"), pytest.raises(ValidationError) as refused_vi:
        run(data)
    # The Vietnamese page says it in Vietnamese: no database's own English words in it.
    assert not any(
        word in refused_vi.value.messages[0]
        for word in ("COPY", "missing data", "extra data", "invalid byte", "line 2")
    )
    assert not MeterReading.objects.exists()


def test_imports_a_nul_character_in_a_reading_line_refuses_that_line_not_the_whole_file(
    make_customer, tariffs
):
    """A NUL byte (a damaged export of a handheld) in one line: that line is refused, listed with its line
    number, and the file's other lines go in, as on SQLite and as the admin's imports refuse only its row."""
    customer = make_customer()
    other = make_customer(name="Khách hai")
    data = _lines(customer, f"{serial(other)}\x00,2025-10,90".encode())
    result, rejects = run(data)
    assert (result.total, result.inserted, result.rejected) == (2, 1, 1)
    assert rejects == [(3, "The line holds a NUL character.")]
    assert current(customer, OCT).value == 150
    assert not MeterReading.objects.filter(contract__customer=other).exists()
    # All or nothing: the line refuses the file, and says why.
    MeterReading.objects.all().delete()
    result, rejects = run(data, all_or_nothing=True)
    assert (result.written, result.rejected, rejects) == (False, 1, [(3, "The line holds a NUL character.")])
    assert not MeterReading.objects.exists()


def test_imports_lines_keep_the_files_numbers_across_chunks_blank_lines_and_line_ends(
    make_customer, tariffs, monkeypatch
):
    """The file read a few bytes at a time (a line end split between two reads, a blank line, a quoted cell
    over two lines): each refused line is named by its line in the file, on both databases."""
    monkeypatch.setattr(imports, "CHUNK", 7)
    good = make_customer()
    first, second = make_customer(name="Khách hai"), make_customer(name="Khách ba")
    lines = [
        b"meter_serial,period,value,note",
        f"{serial(good)},2025-10,150,".encode(),
        b"",  # line 3, blank
        b"NOPE,2025-10,5,",  # line 4: unknown serial
        f'{serial(first)},2025-10,abc,"two\r\nlines"'.encode(),  # line 5: not a register (a cell over two lines)
        f"{serial(second)},2025-10,-5,".encode(),  # line 6: negative
        b"",
    ]
    result, rejects = run(b"\r\n".join(lines))
    assert (result.total, result.inserted, result.rejected) == (4, 1, 3)
    assert rejects == [
        (4, "Unknown meter serial."),
        (5, "The register is not a whole number of kWh."),
        (6, "The register is negative."),
    ]
    assert current(good, OCT).value == 150
    # A line of the wrong width after them is named by its line too, and nothing is written.
    MeterReading.objects.all().delete()
    with pytest.raises(ValidationError) as refused:
        run(b"\r\n".join([*lines[:-1], b"X1,2025-10,5", b""]))
    assert refused.value.messages == ["Line 7 has 3 columns where the header has 4."]
    assert not MeterReading.objects.exists()


def test_imports_a_file_mixing_line_ends_reads_its_lines(make_customer, tariffs):
    """A header ended by LF, lines by CR LF, LF or CR, the last without an end: one line each."""
    customer = make_customer()
    other, third = make_customer(name="Khách hai"), make_customer(name="Khách ba")
    data = (
        b"meter_serial,period,value\n"
        + (
            f"{serial(customer)},2025-10,150\r\nNOPE,2025-10,5\n{serial(other)},2025-10,x\r{serial(third)},2025-10,7"
        ).encode()
    )
    result, rejects = run(data)
    assert (result.total, result.inserted) == (4, 2)
    assert rejects == [(3, "Unknown meter serial."), (4, "The register is not a whole number of kWh.")]
    assert (current(customer, OCT).value, current(third, OCT).value) == (150, 7)


def _copied(data: bytes) -> tuple[bytes, list[int]]:
    """What COPY reads of a file's lines after the header ``meter_serial,value,note`` (ended by CR LF), and
    the lines that held a NUL."""
    nul_lines: list[int] = []
    out = b"".join(
        imports._copy_data(io.BytesIO(data), ["meter_serial", "value", "x1"], ",", b"\r\n", nul_lines,
                           lambda *a, **k: None, 0)
    )  # fmt: skip
    assert out.count(b"\r") == out.count(b"\n")  # every line ended as the first (COPY asks it)
    return out, nul_lines


def _rows(out: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(out.decode(), newline="")))


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_imports_copy_reads_plain_lines_as_they_are_and_checks_the_others_as_sqlite_does(monkeypatch, chunk):
    monkeypatch.setattr(imports, "CHUNK", chunk)
    # Plain lines go to COPY as they are, a blank one as a row of empty cells (deleted after COPY).
    assert _copied(b"A,1,\r\n\r\nB,2,x\r\n") == (b"A,1,\r\n,,\r\nB,2,x\r\n", [])
    assert _copied(b"A,1,\r\nB,2,x") == (b"A,1,\r\nB,2,x\r\n", [])  # the last line without its end
    # A quoted cell, a NUL, a line end of another kind: checked and written anew, each line where it was.
    out, nul_lines = _copied(b'A,1,\r\nB,2,"a, b"\r\n\r\nC\x00,3,\nD,4,')
    assert _rows(out) == [
        ["A", "1", ""],
        ["B", "2", "a, b"],
        ["", "", ""],
        ["C\ufffd", "3", ""],
        ["D", "4", ""],
    ]
    assert nul_lines == [5]  # the header is line 1, the blank line 4
    with pytest.raises(ValidationError) as refused:
        _copied(b"A,1,\r\nB,2\r\n")
    assert refused.value.messages == ["Line 3 has 2 columns where the header has 3."]
    with pytest.raises(ValidationError) as refused:
        _copied("A,1,\r\nB,2,Đà\r\n".encode("cp1258"))
    assert refused.value.messages == ["The file is not UTF-8 text."]
