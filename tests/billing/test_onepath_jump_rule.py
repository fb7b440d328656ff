"""Auditor "onepath": the implausible-jump rule is written twice, in Python (``billing.services._jump_reason``,
used by ``reading_record``: the admin, the API, the late lines of a file) and in SQL (``billing.imports._calc_sql``
and ``_insert_sql``, the readings import). The Python side divides with ``Decimal`` (28 digits) and multiplies
back; the SQL side compares whole numbers exactly. The same register of the same history is flagged by one and
not by the other, and a flagged one is told a different expected figure."""

from __future__ import annotations

import datetime as dt

from billing import imports, rules
from billing import services as billing
from tests.billing.test_import_readings import contract, csv_bytes, current, run, serial

JUL, AUG, OCT = dt.date(2025, 7, 1), dt.date(2025, 8, 1), dt.date(2025, 10, 1)


def _same_history(make_customer, read, jul: int, aug: int):
    imported, recorded = make_customer(name="Nhập tay đôi"), make_customer(name="Ghi tay đôi")
    for customer in (imported, recorded):
        read(customer, JUL, jul)
        read(customer, AUG, aug)
    return imported, recorded


def test_a_register_exactly_three_times_the_expected_is_flagged_by_hand_but_not_by_the_import(make_customer, read):
    # given: July and August (62 days) read 116 kWh; October (31 days) is expected at exactly 58 kWh
    imported, recorded = _same_history(make_customer, read, 58, 116)
    # when: October reads 174 kWh = exactly 3 × 58 (TONGDAI_READING_JUMP_FACTOR = 3): not *above* the limit
    _result, rejects = run(csv_bytes([(serial(imported), "2025-10", 290)]), source="handheld")
    by_hand = billing.reading_record(actor=None, contract=contract(recorded), period=OCT, value=290,
                                     source="handheld")  # fmt: skip
    # then: both paths decide the same (the import, exactly: valid; reading_record flags it and its bill is held)
    assert rejects == []
    assert current(imported, OCT).status == "valid"
    assert by_hand.status == current(imported, OCT).status, by_hand.flag_reason


def test_a_flagged_jump_names_the_same_expected_figure_whichever_way_it_came_in(make_customer, read):
    # given: July and August (62 days) read 101 kWh; October (31 days) is expected at exactly 50.5 kWh
    imported, recorded = _same_history(make_customer, read, 50, 101)
    # when: October reads 200 kWh (flagged by both)
    _result, rejects = run(csv_bytes([(serial(imported), "2025-10", 301)]), source="handheld")
    by_hand = billing.reading_record(actor=None, contract=contract(recorded), period=OCT, value=301,
                                     source="handheld")  # fmt: skip
    # then: "about 50" (50.5 rounded half to even, as the import words it) in both
    assert rejects == []
    assert current(imported, OCT).flag_reason == "200 kWh against about 50 expected from the last cycles"
    assert by_hand.flag_reason == current(imported, OCT).flag_reason


# One rule, both paths: a grid of histories ---------------------------------------------------------------------
# Each case: the kWh of the months read before (in order), the month then read, and its kWh. Exact multiples of
# the expected amount (3 × 58 = 174, 3 × 25⅓ = 76), expected amounts ending in .5 (50.5, 20.5, 21.5: "about"
# rounds half to even), the "more than 50 kWh above" edge, and a history of nothing.

JAN, FEB, MAR, APR, MAY, JUN = (dt.date(2025, m, 1) for m in (1, 2, 3, 4, 5, 6))
HISTORIES = {
    "58+58 over 62 days, October expects 58": ((JUL, 58), (AUG, 58), OCT),
    "50+51 over 62 days, October expects 50.5": ((JUL, 50), (AUG, 51), OCT),
    "25+25+26 over 90 days, April expects 25⅓": ((JAN, 25), (FEB, 25), (MAR, 26), APR),
    "20+21 over 62 days, October expects 20.5": ((JUL, 20), (AUG, 21), OCT),
    "21+22 over 62 days, October expects 21.5": ((JUL, 21), (AUG, 22), OCT),
    "30+31+30 over 92 days, August expects 30.66": ((MAY, 30), (JUN, 31), (JUL, 30), AUG),
    "30+30+30 over 90 days, April expects 30": ((JAN, 30), (FEB, 30), (MAR, 30), APR),
    "nothing used": ((JUL, 0), (AUG, 0), OCT),
}
GRID = [
    ("58+58 over 62 days, October expects 58", 173, ""),
    ("58+58 over 62 days, October expects 58", 174, ""),  # exactly 3 × expected: not above it
    ("58+58 over 62 days, October expects 58", 175, "about 58"),
    ("50+51 over 62 days, October expects 50.5", 151, ""),  # 3 × 50.5 = 151.5
    ("50+51 over 62 days, October expects 50.5", 152, "about 50"),
    ("50+51 over 62 days, October expects 50.5", 200, "about 50"),
    ("25+25+26 over 90 days, April expects 25⅓", 76, ""),  # exactly 3 × expected
    ("25+25+26 over 90 days, April expects 25⅓", 77, "about 25"),
    ("20+21 over 62 days, October expects 20.5", 70, ""),  # 49.5 above: not more than 50
    ("20+21 over 62 days, October expects 20.5", 71, "about 20"),  # 50.5 above
    ("21+22 over 62 days, October expects 21.5", 71, ""),  # 49.5 above
    ("21+22 over 62 days, October expects 21.5", 72, "about 22"),  # 50.5 above; 21.5 → 22 (even)
    ("30+31+30 over 92 days, August expects 30.66", 91, ""),
    ("30+31+30 over 92 days, August expects 30.66", 92, "about 31"),
    ("30+30+30 over 90 days, April expects 30", 90, ""),  # exactly 3 × expected
    ("30+30+30 over 90 days, April expects 30", 91, "about 30"),
    ("nothing used", 500, ""),
]


def _history_of(make_customer, read, case: str, name: str):
    *months, _period = HISTORIES[case]
    customer, register = make_customer(name=name), 0
    for period, kwh in months:
        register += kwh
        read(customer, period, register)
    return customer, register


def _set_based_import(monkeypatch, lines):
    """Import ``lines`` (serial, period, register) where none may go through ``reading_record``."""

    def refuse(**kw):
        raise AssertionError("the line went through reading_record, not the set-based SQL")

    monkeypatch.setattr(imports, "reading_record", refuse)
    return run(csv_bytes(lines), source="handheld")


def test_both_paths_flag_the_same_readings_in_the_same_words_over_a_grid_of_histories(
    make_customer, read, monkeypatch
):
    pairs, lines = [], []  # (the reading recorded by hand, the customer whose line is imported)
    for n, (case, kwh, _about) in enumerate(GRID):
        period = HISTORIES[case][-1]
        by_hand, register = _history_of(make_customer, read, case, f"Ghi {n}")
        imported, _same = _history_of(make_customer, read, case, f"Nhập {n}")
        pairs.append((billing.reading_record(actor=None, contract=contract(by_hand), period=period,
                                             value=register + kwh, source="handheld"), imported))  # fmt: skip
        lines.append((serial(imported), f"{period:%Y-%m}", register + kwh))
    result, rejects = _set_based_import(monkeypatch, lines)
    assert (result.inserted, rejects) == (len(GRID), [])
    seen = []
    for (case, kwh, _about), (by_hand, imported) in zip(GRID, pairs, strict=True):
        got = current(imported, HISTORIES[case][-1])
        assert (got.kwh, got.status, got.flag_reason) == (by_hand.kwh, by_hand.status, by_hand.flag_reason), case
        seen.append((case, kwh, got.flag_reason))
    # and what they agree on is the rule: strictly above 3 × expected and more than 50 kWh above it
    assert seen == [
        (case, kwh, f"{kwh} kWh against {about} expected from the last cycles" if about else "")
        for case, kwh, about in GRID
    ]


def test_the_rule_compares_exactly_and_rounds_the_figure_half_to_even():
    # the import's integers (``billing.imports._calc_sql``, ``_insert_sql``) over every small history
    for hist_kwh in range(0, 400, 7):
        for hist_days in (59, 61, 62, 89, 90, 92):
            for days in (28, 30, 31):
                for kwh in range(0, 3 * hist_kwh * days // hist_days + 60, 3):
                    flagged = (hist_kwh > 0 and kwh * hist_days > 3 * hist_kwh * days
                               and kwh * hist_days - hist_kwh * days > 50 * hist_days)  # fmt: skip
                    q, r = divmod(hist_kwh * days, hist_days)
                    about = q + (2 * r > hist_days or (2 * r == hist_days and q % 2 == 1))
                    reason = rules.jump_reason(kwh, hist_kwh, hist_days, days, 3.0)
                    assert reason == (f"{kwh} kWh against about {about} expected from the last cycles"
                                      if flagged else ""), (hist_kwh, hist_days, days, kwh)  # fmt: skip
