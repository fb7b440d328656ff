"""Electricity charges for one billing period: pure arithmetic, no database.

A period [start, end) is cut into segments wherever the price table or the VAT rate changes. Each segment
gets its share of the consumption and of every tier's width by days (rounded half-up to whole kWh, the last
segment taking the remainder so the shares add up to the whole), and is priced with the table in force on
its first day. Amounts are whole đồng (VND has no minor unit) and every step uses integers or ``Decimal``,
never floats.

The rounding rule, written once here and used by every service (the billing run, a recompute, an adjustment,
a rebate round, whose set-based SQL does the same integer arithmetic):

- VAT is computed once per VAT rate, on the sum of that rate's line amounts, rounded half up
  (``vat_amount``) — never per segment or per line;
- a rebate of p % reduces each VAT rate's amounts by ``round_half_up(base × p / 100)`` of that rate's base
  (``rebate_parts``), and its VAT is what that takes off the rate's VAT: VAT(base) − VAT(base − reduction), so
  the bill's VAT stays the VAT of its rate sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Protocol

KINDS = ("tiered", "flat", "tou")
TOU_REGISTERS = ("normal", "peak", "offpeak")
_TOU_LABELS = {"normal": "Normal", "peak": "Peak", "offpeak": "Off-peak"}

type _Row = tuple[str, int | None, int, int]  # label, tier, kWh, price


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Tier:
    """One tier of a price table: its cumulative upper bound in kWh (None: no bound) and VND/kWh before VAT."""

    upper_kwh: int | None
    price: int


@dataclass(frozen=True)
class PriceTable:
    """The prices of one structure from ``valid_from`` on: tiered, flat (one unbounded tier) or time-of-use."""

    kind: str
    valid_from: date
    tiers: tuple[Tier, ...] = ()
    tou_prices: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        object.__setattr__(self, "tou_prices", tuple(tuple(pair) for pair in self.tou_prices))
        where = f"{self.kind} price table from {self.valid_from}"
        if self.kind not in KINDS:
            raise ValueError(f"unknown price table kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.valid_from, date):
            raise ValueError(f"{where}: valid_from must be a date")
        if self.kind == "tou":
            self._check_tou(where)
        else:
            self._check_tiers(where)

    def _check_tiers(self, where: str) -> None:
        if self.tou_prices:
            raise ValueError(f"{where}: time-of-use prices belong to a 'tou' table only")
        if not self.tiers:
            raise ValueError(f"{where}: needs at least one tier")
        if self.kind == "flat" and len(self.tiers) != 1:
            raise ValueError(f"{where}: a flat table has exactly one tier, with no upper bound")
        previous = 0
        for index, tier in enumerate(self.tiers, start=1):
            if not isinstance(tier, Tier):
                raise ValueError(f"{where}: tier {index} must be a Tier, got {tier!r}")
            if not _is_int(tier.price) or tier.price <= 0:
                raise ValueError(
                    f"{where}: tier {index} price must be a positive integer, got {tier.price!r}"
                )
            last = index == len(self.tiers)
            if tier.upper_kwh is None:
                if not last:
                    raise ValueError(
                        f"{where}: only the last tier may have no upper bound (tier {index} has none)"
                    )
                continue
            if last:
                raise ValueError(f"{where}: the last tier must have no upper bound, got {tier.upper_kwh!r}")
            if not _is_int(tier.upper_kwh) or tier.upper_kwh <= previous:
                raise ValueError(
                    f"{where}: tier upper bounds must be integers increasing strictly from 0; "
                    f"tier {index} has {tier.upper_kwh!r} after {previous}"
                )
            previous = tier.upper_kwh

    def _check_tou(self, where: str) -> None:
        if self.tiers:
            raise ValueError(f"{where}: a time-of-use table has register prices, not tiers")
        if not self.tou_prices:
            raise ValueError(f"{where}: needs at least one register price")
        seen: set[str] = set()
        for pair in self.tou_prices:
            if len(pair) != 2:
                raise ValueError(f"{where}: each register price is a (register, price) pair, got {pair!r}")
            register, price = pair
            if register not in TOU_REGISTERS:
                raise ValueError(
                    f"{where}: unknown register {register!r}; expected one of {', '.join(TOU_REGISTERS)}"
                )
            if register in seen:
                raise ValueError(f"{where}: register {register!r} is priced twice")
            seen.add(register)
            if not _is_int(price) or price <= 0:
                raise ValueError(f"{where}: {register} price must be a positive integer, got {price!r}")

    def tou_price(self, register: str) -> int | None:
        """The price of a time-of-use register, or None when this table does not price it."""
        return dict(self.tou_prices).get(register)


@dataclass(frozen=True)
class VatRate:
    """The VAT percentage on electricity from ``valid_from`` on."""

    valid_from: date
    percent: int

    def __post_init__(self) -> None:
        if not isinstance(self.valid_from, date):
            raise ValueError("VAT rate: valid_from must be a date")
        if not _is_int(self.percent) or not 0 <= self.percent <= 100:
            raise ValueError(
                f"VAT rate from {self.valid_from}: percent must be an integer 0–100, got {self.percent!r}"
            )


@dataclass(frozen=True)
class ChargeLine:
    """One priced line of a bill: kWh of one tier (or register) in one segment [valid_from, valid_to)."""

    valid_from: date
    valid_to: date
    label: str
    tier: int | None
    kwh: int
    price: int
    amount: int
    vat_percent: int


@dataclass(frozen=True)
class Charge:
    """A computed bill. ``vat_lines`` holds (first day at the rate, VAT percent, base, VAT amount) per VAT
    rate, the base being the sum of that rate's lines (less its rebates); ``rebates`` the parts of each rebate
    applied, in order. ``subtotal``, ``vat`` and ``total`` are after the rebates."""

    lines: tuple[ChargeLine, ...]
    kwh: int
    subtotal: int
    vat: int
    total: int
    vat_lines: tuple[tuple[date, int, int, int], ...]
    rebates: tuple[tuple[RebatePart, ...], ...] = ()


@dataclass(frozen=True)
class RebatePart:
    """What a rebate takes off the lines of one VAT rate: the base it reduced, the reduction, and its VAT."""

    vat_percent: int
    base: int
    amount: int
    vat: int


def round_half_up(value: Decimal) -> int:
    """Round to a whole number, halves away from zero (2.5 → 3, −2.5 → −3)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def vat_amount(base: int, percent: int) -> int:
    """The VAT of one rate's base (the sum of that rate's amounts): base × percent / 100, half up."""
    return round_half_up(Decimal(base) * percent / 100)


def rebate_parts(bases: Mapping[int, int], percent: Decimal) -> tuple[RebatePart, ...]:
    """A rebate of ``percent`` on a bill whose lines sum to ``bases`` (VAT percent → amount): per rate the
    reduction is the base × percent / 100 half up, and its VAT is VAT(base) − VAT(base − reduction). Rates
    from the highest; a rate whose base is not positive gets nothing."""
    parts = []
    for rate in sorted(bases, reverse=True):
        base = bases[rate]
        if base <= 0:
            continue
        amount = round_half_up(Decimal(base) * Decimal(percent) / 100)
        parts.append(RebatePart(rate, base, amount, vat_amount(base, rate) - vat_amount(base - amount, rate)))
    return tuple(parts)


def _share(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-up, exactly, for numerator ≥ 0 and denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


class _Dated(Protocol):
    @property
    def valid_from(self) -> date: ...


def _history[D: _Dated](items: Sequence[D], what: str) -> list[D]:
    if not items:
        raise ValueError(f"no {what} given")
    ordered = sorted(items, key=lambda item: item.valid_from)
    for before, after in pairwise(ordered):
        if before.valid_from == after.valid_from:
            raise ValueError(f"two {what} are valid from {after.valid_from}")
    return ordered


def _in_force[D: _Dated](history: list[D], day: date, what: str) -> D:
    current = None
    for item in history:
        if item.valid_from > day:
            break
        current = item
    if current is None:
        raise ValueError(
            f"no {what} in force on {day}: the period starts before the first one (valid from "
            f"{history[0].valid_from})"
        )
    return current


def _split(total: int, day_counts: list[int], days: int) -> list[int]:
    """Share ``total`` kWh among segments by days; the last segment takes the remainder."""
    parts = []
    left = total
    for count in day_counts[:-1]:
        # min() only matters when many short segments all round up; the sum stays exact.
        part = min(_share(total * count, days), left)
        parts.append(part)
        left -= part
    parts.append(left)
    return parts


def _tier_label(index: int, lower: int, upper: int | None) -> str:
    if upper is None:
        return f"Tier {index} ({lower + 1}+ kWh)" if lower else f"Tier {index} (all kWh)"
    return f"Tier {index} ({lower + 1 if lower else 0}–{upper} kWh)"


def _tier_widths(
    tables: list[PriceTable], households: int, day_counts: list[int], days: int
) -> list[list[int]]:
    """Per segment, the width in kWh of each bounded tier of its table. A tier as wide in every segment is
    shared like the kWh (``_split``: the last segment takes the remainder, so the shares add up to the
    width); a tier whose width changes with the table is pro-rated in each segment on its own."""
    widths: list[list[int]] = [[] for _table in tables]
    for index in range(max(len(table.tiers) for table in tables)):
        whole: list[int | None] = []
        for table in tables:
            tiers = table.tiers
            upper = tiers[index].upper_kwh if index < len(tiers) else None
            if upper is None:
                whole.append(None)
                continue
            lower = (tiers[index - 1].upper_kwh or 0) if index else 0
            whole.append((upper - lower) * households)
        shares: list[int | None]
        if whole[0] is not None and None not in whole and len(set(whole)) == 1:
            shares = list(_split(whole[0], day_counts, days))
        else:
            shares = [
                None if w is None else _share(w * count, days)
                for w, count in zip(whole, day_counts, strict=True)
            ]
        for position, share in enumerate(shares):
            if share is not None:
                widths[position].append(share)
    return widths


def _tier_lines(table: PriceTable, kwh: int, widths: list[int], households: int = 1) -> list[_Row]:
    """(label, tier, kWh, price) for each tier that the segment's kWh reach, ``widths`` the segment's share
    of each bounded tier. The label states the tier's range multiplied by the households sharing the meter."""
    if table.kind == "flat":
        return [("Flat", None, kwh, table.tiers[0].price)] if kwh else []
    rows: list[_Row] = []
    left = kwh
    lower = 0
    for index, tier in enumerate(table.tiers, start=1):
        if left == 0:
            break
        take = left if tier.upper_kwh is None else min(left, widths[index - 1])
        if take:
            upper = None if tier.upper_kwh is None else tier.upper_kwh * households
            rows.append((_tier_label(index, lower * households, upper), index, take, tier.price))
        left -= take
        if tier.upper_kwh is not None:
            lower = tier.upper_kwh
    return rows


def _tou_lines(table: PriceTable, kwh_by_register: dict[str, int]) -> list[_Row]:
    """(label, None, kWh, price) for each register with kWh in the segment, in register order."""
    prices = dict(table.tou_prices)
    return [
        (_TOU_LABELS[register], None, kwh_by_register[register], prices[register])
        for register in TOU_REGISTERS
        if kwh_by_register.get(register)
    ]


def _tou_consumption(consumption: object) -> dict[str, int]:
    if not isinstance(consumption, Mapping):
        raise ValueError("time-of-use consumption must be a mapping of register to kWh")
    readings: dict[str, int] = {}
    for register, kwh in consumption.items():
        if register not in TOU_REGISTERS:
            raise ValueError(f"unknown register {register!r}; expected one of {', '.join(TOU_REGISTERS)}")
        if not _is_int(kwh) or kwh < 0:
            raise ValueError(f"{register} consumption must be a whole number of kWh ≥ 0, got {kwh!r}")
        readings[register] = kwh
    return readings


def compute_charge(
    *,
    start: date,
    end: date,
    consumption: int | Mapping[str, int],
    tables: Sequence[PriceTable],
    vat_rates: Sequence[VatRate],
    households: int = 1,
    rebates: Sequence[Decimal] = (),
) -> Charge:
    """The charge for [start, end): ``consumption`` in kWh (a register → kWh mapping for time-of-use),
    ``tables`` the dated history of one price structure, ``vat_rates`` the dated VAT history, ``rebates`` the
    percentages of the rebates on the bill, applied in order (each on the amounts left by the ones before).

    Raises ValueError on a bad period, consumption, household count or table history.
    """
    days = (end - start).days
    if days < 1:
        raise ValueError(f"the billing period must end after it starts (start {start}, end {end})")
    if not _is_int(households) or households < 1:
        raise ValueError(f"households must be a whole number ≥ 1, got {households!r}")
    kinds = sorted({table.kind for table in tables})
    if len(kinds) > 1:
        raise ValueError(f"price tables mix kinds ({', '.join(kinds)}); pass the history of one structure")
    table_history = _history(tables, "price tables")
    vat_history = _history(vat_rates, "VAT rates")
    kind = table_history[0].kind
    readings = _readings(kind, consumption)
    segments = _segments(start, end, table_history, vat_history)
    if kind == "tou":
        _check_tou_prices(segments, readings)
    lines = _charge_lines(kind, segments, readings, households=households, days=days)
    return _charge(segments, lines, readings, rebates)


_Segment = tuple[date, date, PriceTable, VatRate]


def _readings(kind: str, consumption: int | Mapping[str, int]) -> dict[str, int]:
    """The kWh by register (the one register ``""`` outside time-of-use), checked."""
    if kind == "tou":
        return _tou_consumption(consumption)
    if isinstance(consumption, bool) or not isinstance(consumption, int) or consumption < 0:
        raise ValueError(f"consumption must be a whole number of kWh ≥ 0, got {consumption!r}")
    return {"": consumption}


def _segments(
    start: date, end: date, table_history: list[PriceTable], vat_history: list[VatRate]
) -> list[_Segment]:
    """[start, end) cut at each day a price table or VAT rate starts: (start, end, table, rate) each."""
    dates = [table.valid_from for table in table_history] + [rate.valid_from for rate in vat_history]
    bounds = [start, *sorted({day for day in dates if start < day < end}), end]
    return [
        (
            seg_start,
            seg_end,
            _in_force(table_history, seg_start, "price table"),
            _in_force(vat_history, seg_start, "VAT rate"),
        )
        for seg_start, seg_end in pairwise(bounds)
    ]


def _check_tou_prices(segments: list[_Segment], readings: dict[str, int]) -> None:
    """Every register with kWh has a price in every segment's time-of-use table."""
    for _seg_start, _seg_end, table, _vat in segments:
        unpriced = [register for register, kwh in readings.items() if kwh and table.tou_price(register) is None]
        if unpriced:
            raise ValueError(
                f"the time-of-use price table from {table.valid_from} has no price for {', '.join(unpriced)}"
            )


def _charge_lines(
    kind: str, segments: list[_Segment], readings: dict[str, int], *, households: int, days: int
) -> list[ChargeLine]:
    """The lines of each segment: its share of the kWh by tier (or by register for time-of-use)."""
    day_counts = [(seg_end - seg_start).days for seg_start, seg_end, _table, _vat in segments]
    shares = {register: _split(kwh, day_counts, days) for register, kwh in readings.items()}
    if kind != "tou":
        widths = _tier_widths([table for _s, _e, table, _v in segments], households, day_counts, days)

    lines: list[ChargeLine] = []
    for position, (seg_start, seg_end, table, vat_rate) in enumerate(segments):
        if kind == "tou":
            rows = _tou_lines(table, {register: parts[position] for register, parts in shares.items()})
        else:
            rows = _tier_lines(table, shares[""][position], widths[position], households)
        segment_lines = [
            ChargeLine(
                valid_from=seg_start,
                valid_to=seg_end,
                label=label,
                tier=tier,
                kwh=kwh,
                price=price,
                amount=kwh * price,
                vat_percent=vat_rate.percent,
            )
            for label, tier, kwh, price in rows
        ]
        lines.extend(segment_lines)
    return lines


def _charge(
    segments: list[_Segment], lines: list[ChargeLine], readings: dict[str, int], rebates: Sequence[Decimal]
) -> Charge:
    """The bill's totals: one VAT per rate, on the sum of that rate's amounts (less its rebates)."""
    first_day: dict[int, date] = {}
    bases: dict[int, int] = {}
    for seg_start, _seg_end, _table, vat_rate in segments:
        first_day.setdefault(vat_rate.percent, seg_start)
        bases.setdefault(vat_rate.percent, 0)
    for line in lines:
        bases[line.vat_percent] += line.amount
    applied = []
    for percent in rebates:
        parts = rebate_parts(bases, percent)
        for part in parts:
            bases[part.vat_percent] -= part.amount
        applied.append(parts)
    vat_lines = tuple((first_day[rate], rate, base, vat_amount(base, rate)) for rate, base in bases.items())
    subtotal = sum(bases.values())
    vat = sum(amount for _start, _percent, _base, amount in vat_lines)
    return Charge(
        lines=tuple(lines),
        kwh=sum(readings.values()),
        subtotal=subtotal,
        vat=vat,
        total=subtotal + vat,
        vat_lines=vat_lines,
        rebates=tuple(applied),
    )
