"""Deterministic demo data at city scale: customers, phones, contracts, meters and meter history.

The generator makes plain tuples (no model objects), chunk by chunk, each chunk from its own seeded random
stream, so the same seed and size always give the same data, and a larger size extends a smaller one.
The loader writes them with COPY on PostgreSQL (indexes and constraints dropped and rebuilt around a large
load, all in one transaction) and with executemany on SQLite. The rows carry exactly what the services
would write, ``search_text`` included; a test holds the two to the same result.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from core import db
from crm.reference_data import wards
from customers import demo_names
from customers.models import Contract, Customer, CustomerPhone, DemoDataset, Meter, MeterAssignment
from customers.normalise import fold

CHUNK = 10_000
STREETS_FILE = Path(__file__).resolve().parent / "demo_data" / "streets.json"

CUSTOMER_COLUMNS = [
    "id", "code", "unit_id", "full_name", "national_id", "email", "street", "ward", "district", "province",
    "customer_type", "households", "is_nuisance", "nuisance_reason", "nuisance_set_by_id", "nuisance_set_at",
    "search_text", "created_at", "updated_at",
]  # fmt: skip
PHONE_COLUMNS = ["id", "customer_id", "number", "is_primary", "label"]
CONTRACT_COLUMNS = [
    "id",
    "number",
    "customer_id",
    "tariff_category",
    "purpose",
    "start_date",
    "end_date",
    "status",
]
METER_COLUMNS = ["id", "serial", "unit_id", "kind", "phases", "status", "manufacturer"]
ASSIGNMENT_COLUMNS = [
    "id", "meter_id", "contract_id", "installed_at", "reading_at_install", "removed_at", "reading_at_removal",
    "removal_reason",
]  # fmt: skip

TABLES = [
    (Customer, CUSTOMER_COLUMNS, "customers"),
    (CustomerPhone, PHONE_COLUMNS, "phones"),
    (Contract, CONTRACT_COLUMNS, "contracts"),
    (Meter, METER_COLUMNS, "meters"),
    (MeterAssignment, ASSIGNMENT_COLUMNS, "assignments"),
]

MOBILE_PREFIXES = [
    "32", "33", "34", "35", "36", "37", "38", "39", "86", "96", "97", "98",  # Viettel
    "90", "93", "70", "76", "77", "78", "79", "89",  # MobiFone
    "91", "94", "81", "82", "83", "84", "85", "88",  # VinaPhone
]  # fmt: skip
MANUFACTURERS = [("EMIC", "EM"), ("Gelex", "GX"), ("Vinasino", "VS"), ("Landis+Gyr", "LG"), ("Elster", "EL")]
PURPOSES = {
    "residential": ["Sinh hoạt", "Sinh hoạt hộ gia đình"],
    "business": [
        "Kinh doanh cửa hàng",
        "Kinh doanh dịch vụ ăn uống",
        "Văn phòng công ty",
        "Kinh doanh nhà trọ",
    ],
    "production": ["Sản xuất", "Xưởng cơ khí", "Xưởng may"],
    "administrative": ["Hành chính sự nghiệp", "Trường học", "Chiếu sáng công cộng"],
    "other": ["Công trình xây dựng tạm", "Khác"],
}
TARIFF_OF_TYPE = {
    "residential": "residential",
    "business": "business",
    "production": "production",
    "administrative": "administrative",
    "other": "business",
}
REMOTE_READ_SHARE = 0.4658  # EVNHCMC, June 2020: 1,195,758 of 2,567,007 meters


@dataclass
class UnitInfo:
    id: int
    code: str
    company_code: str
    district: str
    province: str
    wards: list[tuple[str, str]]  # (ward, folded ward)
    streets: list[tuple[str, str]]  # (street, folded street)
    next_number: int = 1


@dataclass
class Batch:
    customers: list[tuple] = field(default_factory=list)
    phones: list[tuple] = field(default_factory=list)
    contracts: list[tuple] = field(default_factory=list)
    meters: list[tuple] = field(default_factory=list)
    assignments: list[tuple] = field(default_factory=list)

    def rows(self, name: str) -> list[tuple]:
        return getattr(self, name)


def _with_folds(words: list[str]) -> list[tuple[str, str]]:
    return [(w, fold(w)) for w in words]


class Generator:
    """Makes the rows of demo customers ``start .. stop-1`` (ordinals), ids counted from the given bases."""

    def __init__(self, *, seed: int, units: list[UnitInfo], ids: dict[str, int], now: dt.datetime):
        self.seed = seed
        self.units = units
        self.ids = dict(ids)
        self.now = now
        self.created_at = now
        families = demo_names.FAMILY_NAMES
        self.family = _with_folds([name for name, _share in families])
        self.family_cum = list(itertools.accumulate(share for _name, share in families))
        self.middle_m = _with_folds(demo_names.MIDDLE_NAMES_MALE)
        self.middle_f = _with_folds(demo_names.MIDDLE_NAMES_FEMALE)
        self.given_m = _with_folds(demo_names.GIVEN_NAMES_MALE)
        self.given_f = _with_folds(demo_names.GIVEN_NAMES_FEMALE)
        self.biz_prefix = _with_folds(demo_names.BUSINESS_PREFIXES)
        self.biz_words = _with_folds(demo_names.BUSINESS_WORDS)
        self.admin_names = _with_folds(demo_names.ADMINISTRATIVE_NAMES)
        self.unit_folds = {u.id: fold(u.district) for u in units}
        self.epoch = dt.datetime(1996, 1, 1, tzinfo=dt.UTC)
        self.span_days = (now - self.epoch).days - 30

    def _rng(self, chunk: int) -> random.Random:
        return random.Random(self.seed * 1_000_003 + chunk)

    def chunks(self, start: int, stop: int) -> Iterator[Batch]:
        ordinal = start
        while ordinal < stop:
            chunk = ordinal // CHUNK
            rng = self._rng(chunk)
            # Skip the part of the chunk made by an earlier run, advancing the stream the same way.
            chunk_start = chunk * CHUNK
            batch_stop = min(stop, chunk_start + CHUNK)
            batch = Batch()
            for i in range(chunk_start, batch_stop):
                self._customer(rng, batch if i >= ordinal else None)
            ordinal = batch_stop
            yield batch

    def _name(self, rng: random.Random, kind: str) -> tuple[str, str]:
        if kind == "business":
            p, pf = self.biz_prefix[int(rng.random() * len(self.biz_prefix))]
            a, af = self.biz_words[int(rng.random() * len(self.biz_words))]
            b, bf = self.biz_words[int(rng.random() * len(self.biz_words))]
            return f"{p} {a} {b}", f"{pf} {af} {bf}"
        if kind in ("administrative", "other"):
            n, nf = self.admin_names[int(rng.random() * len(self.admin_names))]
            w, wf = self.biz_words[int(rng.random() * len(self.biz_words))]
            return f"{n} {w}", f"{nf} {wf}"
        f, ff = self.family[
            min(bisect.bisect(self.family_cum, rng.random() * self.family_cum[-1]), len(self.family) - 1)
        ]
        if rng.random() < 0.5:
            m, mf = self.middle_m[int(rng.random() * len(self.middle_m))]
            g, gf = self.given_m[int(rng.random() * len(self.given_m))]
        else:
            m, mf = self.middle_f[int(rng.random() * len(self.middle_f))]
            g, gf = self.given_f[int(rng.random() * len(self.given_f))]
        return f"{f} {m} {g}", f"{ff} {mf} {gf}"

    def _phone(self, rng: random.Random, landline: bool) -> str:
        if landline:
            return f"+8428{rng.choice('3567')}{int(rng.random() * 10_000_000):07d}"
        return f"+84{MOBILE_PREFIXES[int(rng.random() * len(MOBILE_PREFIXES))]}{int(rng.random() * 10_000_000):07d}"

    def _next_id(self, name: str) -> int:
        value = self.ids[name]
        self.ids[name] = value + 1
        return value

    def _customer(self, rng: random.Random, batch: Batch | None) -> None:
        """Draw one customer (always the same number of draws per branch); add rows when batch is given."""
        unit = self.units[int(rng.random() * len(self.units))]
        r = rng.random()
        kind = (
            "residential" if r < 0.885 else "business" if r < 0.965 else "production" if r < 0.98
            else "administrative" if r < 0.995 else "other"
        )  # fmt: skip
        name, name_f = self._name(rng, kind)
        ward, ward_f = unit.wards[int(rng.random() * len(unit.wards))]
        street, street_f = unit.streets[int(rng.random() * len(unit.streets))]
        house = int(rng.random() * 400) + 1
        alley = int(rng.random() * 60) if rng.random() < 0.35 else 0
        number_text = f"{house}/{alley}" if alley else str(house)
        number_fold = f"{house} {alley}" if alley else str(house)
        national_id = (
            f"0{int(rng.random() * 96) + 1:02d}{int(rng.random() * 1e9):09d}"
            if kind == "residential" and rng.random() < 0.85
            else ""
        )
        n_phones = 0 if (p := rng.random()) < 0.03 else 2 if p > 0.88 else 1
        phones = [self._phone(rng, kind != "residential" and rng.random() < 0.5) for _ in range(n_phones)]
        households = 1 if kind != "residential" or rng.random() < 0.93 else 2 + int(rng.random() * 3)
        has_email = rng.random() < 0.15
        n_contracts = 2 if rng.random() < 0.04 else 1
        contract_draws = [
            (rng.random(), rng.random(), rng.random(), rng.random(), rng.random(), rng.random(), rng.random())
            for _ in range(n_contracts)
        ]
        if batch is None:
            return  # made by an earlier run: the draws are consumed, nothing is written

        number = unit.next_number
        unit.next_number += 1
        code = f"{unit.code}{number:07d}"
        customer_id = self._next_id("customer")
        district_f = self.unit_folds[unit.id]
        street_text = f"{number_text} {street}"
        joined = f"{name_f.replace(' ', '')} " if " " in name_f else ""
        search_text = f" {name_f} {number_fold} {street_f} {ward_f} {district_f} {joined}"
        email = (
            f"{name_f.replace(' ', '.')}{number % 1000}@gmail.com"
            if has_email and kind == "residential"
            else ""
        )
        batch.customers.append((
            customer_id, code, unit.id, name, national_id, email, street_text, ward, unit.district, unit.province,
            kind, households, False, "", None, None, search_text, self.created_at, self.created_at,
        ))  # fmt: skip
        seen_phones = set()
        for j, phone in enumerate(phones):
            if phone in seen_phones:
                continue
            seen_phones.add(phone)
            batch.phones.append((self._next_id("phone"), customer_id, phone, j == 0, ""))
        for k, draws in enumerate(contract_draws):
            self._contract(batch, unit, code, customer_id, kind, k, draws)

    def _contract(
        self, batch: Batch, unit, code: str, customer_id: int, kind: str, k: int, draws: tuple
    ) -> None:
        """The rows of one contract of a customer: the contract, its meter (and an older one it replaced)
        and their assignments, from the contract's draws."""
        r_start, r_status, r_kind, r_manu, r_replaced, r_phase, r_reading = draws
        start = self.epoch + dt.timedelta(days=int(r_start * self.span_days))
        status, end_date = "active", None
        if r_status < 0.02:
            status, end_date = (
                "terminated",
                (start + dt.timedelta(days=30 + int(r_status * 150_000))).date(),
            )
            if end_date > self.now.date():
                end_date = self.now.date()
        elif r_status < 0.03:
            status = "suspended"
        purposes = PURPOSES[kind]
        contract_id = self._next_id("contract")
        batch.contracts.append((
            contract_id, f"{code}-{k + 1:02d}", customer_id, TARIFF_OF_TYPE[kind],
            purposes[int(r_status * 1000) % len(purposes)], start.date(), end_date, status,
        ))  # fmt: skip
        phases = 3 if (kind in ("business", "production") and r_phase < 0.6) or r_phase < 0.04 else 1
        installed = start
        if r_replaced < 0.15:  # an old mechanical meter, replaced later
            old_id = self._next_id("meter")
            manufacturer, prefix = MANUFACTURERS[int(r_manu * len(MANUFACTURERS))]
            batch.meters.append(
                (old_id, f"{prefix}{old_id:010d}", unit.id, "mechanical", phases, "retired", manufacturer)
            )
            swapped = start + dt.timedelta(days=int(r_replaced / 0.15 * max((self.now - start).days - 1, 1)))
            last = 100 + int(r_reading * 40_000)
            batch.assignments.append((
                self._next_id("assignment"), old_id, contract_id, start, 0, swapped, last, "Thay định kỳ",
            ))  # fmt: skip
            installed = swapped
        meter_id = self._next_id("meter")
        kind_draw = r_kind
        meter_kind = (
            "remote_read" if kind_draw < REMOTE_READ_SHARE
            else "electronic" if kind_draw < REMOTE_READ_SHARE + 0.2 else "mechanical"
        )  # fmt: skip
        manufacturer, prefix = MANUFACTURERS[int(r_manu * len(MANUFACTURERS))]
        if end_date is not None:  # terminated: the meter came off on the contract's last day
            removed_at = dt.datetime.combine(end_date, dt.time(9), tzinfo=dt.UTC)
            removed_at = max(removed_at, installed)
            batch.meters.append(
                (
                    meter_id,
                    f"{prefix}{meter_id:010d}",
                    unit.id,
                    meter_kind,
                    phases,
                    "retired",
                    manufacturer,
                )
            )
            batch.assignments.append((
                self._next_id("assignment"), meter_id, contract_id, installed, 0, removed_at,
                int(r_reading * 20_000), "Thanh lý hợp đồng",
            ))  # fmt: skip
        else:
            batch.meters.append(
                (
                    meter_id,
                    f"{prefix}{meter_id:010d}",
                    unit.id,
                    meter_kind,
                    phases,
                    "installed",
                    manufacturer,
                )
            )
            batch.assignments.append(
                (self._next_id("assignment"), meter_id, contract_id, installed, 0, None, None, "")
            )


# Loading ----------------------------------------------------------------------------------------------


@functools.cache
def demo_streets() -> dict[str, list[str]]:
    """Company code → real street names of its area, without the word "Đường" (``demo_data/streets.json``):
    the demo customers' addresses."""
    return json.loads(STREETS_FILE.read_text(encoding="utf-8"))["data"]


def _unit_infos(unit_queryset) -> list[UnitInfo]:
    infos = []
    for unit in unit_queryset.select_related("company").order_by("code"):
        ward_names = wards().get(unit.code) or [f"Phường {n}" for n in range(1, 11)]
        streets = demo_streets().get(unit.company.code) or ["Hùng Vương", "Lê Lợi", "Trần Hưng Đạo"]
        infos.append(
            UnitInfo(
                id=unit.pk,
                code=unit.code,
                company_code=unit.company.code,
                district=unit.district,
                province=unit.company.province,
                wards=_with_folds(ward_names),
                streets=_with_folds(streets),
            )
        )
    return infos


def _next_numbers(units: list[UnitInfo]) -> None:
    """Continue each unit's code sequence after its highest existing code."""
    for unit in units:
        last = (
            Customer.objects.filter(code__gte=unit.code + "0000000", code__lte=unit.code + "9999999")
            .order_by("-code")
            .values_list("code", flat=True)
            .first()
        )
        unit.next_number = int(last[6:]) + 1 if last else 1


def _id_bases() -> dict[str, int]:
    bases = {}
    for model, _columns, name in TABLES:
        key = {"customers": "customer", "phones": "phone", "contracts": "contract", "meters": "meter",
               "assignments": "assignment"}[name]  # fmt: skip
        top = model._default_manager.order_by("-pk").values_list("pk", flat=True).first() or 0
        bases[key] = top + 1
    return bases


def _reset_sequences() -> None:
    if not db.is_postgres():
        return  # SQLite's AUTOINCREMENT follows the largest id inserted
    with connection.cursor() as cursor:
        for model, _columns, _name in TABLES:
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
            )


class _IndexesOff:
    """PostgreSQL: drop secondary indexes and constraints for a big load, rebuild them after (same transaction)."""

    def __init__(self, tables: list[str]):
        self.tables = tables
        self.constraints: list[tuple[str, str, str]] = []
        self.indexes: list[tuple[str, str]] = []

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('u', 'f', 'c') ORDER BY contype DESC",
                [self.tables],
            )
            self.constraints = cursor.fetchall()
            cursor.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                [self.tables],
            )
            self.indexes = cursor.fetchall()
            for table, name, _definition in self.constraints:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _definition in self.indexes:
                cursor.execute(f'DROP INDEX "{name}"')
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False  # the transaction rolls back and restores everything
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
            for _name, definition in self.indexes:
                cursor.execute(definition)
            for table, name, definition in reversed(self.constraints):
                cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        return False


def _copy(batch: Batch) -> None:
    with connection.cursor() as cursor:
        for model, columns, name in TABLES:
            rows = batch.rows(name)
            if not rows:
                continue
            sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)


def _adapt(value):
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, dt.date):
        return connection.ops.adapt_datefield_value(value)
    return value


def _insert(batch: Batch) -> None:
    with connection.cursor() as cursor:
        for model, columns, name in TABLES:
            rows = batch.rows(name)
            if not rows:
                continue
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES ({placeholders})",
                [tuple(_adapt(v) for v in row) for row in rows],
            )


BULK_THRESHOLD = 200_000


def seed(*, customers: int, seed: int = 1, units=None, progress=None) -> dict[str, int]:
    """Make sure ``customers`` demo customers of ``seed`` exist; load only what is missing. Idempotent."""
    from crm.models import Unit

    unit_queryset = units if units is not None else Unit.objects.active()
    infos = _unit_infos(unit_queryset)
    if not infos:
        raise ValueError("No units to put demo customers in: load the organisation first.")
    with transaction.atomic():
        dataset, _created = DemoDataset.objects.select_for_update().get_or_create(
            seed=seed, defaults={"customers": 0}
        )
        start = dataset.customers
        if customers <= start:
            return {"loaded": 0, "total": start}
        if db.is_postgres():
            with connection.cursor() as cursor:
                locked = ", ".join(model._meta.db_table for model, _c, _n in TABLES)
                cursor.execute(f"LOCK TABLE {locked} IN SHARE ROW EXCLUSIVE MODE")
        _next_numbers(infos)
        generator = Generator(
            seed=seed, units=infos, ids=_id_bases(), now=timezone.now().replace(microsecond=0)
        )
        counts = dict.fromkeys((name for _m, _c, name in TABLES), 0)
        bulk = db.is_postgres() and customers - start >= BULK_THRESHOLD
        writer = _copy if db.is_postgres() else _insert
        tables = [model._meta.db_table for model, _c, _n in TABLES]
        with _IndexesOff(tables) if bulk else contextlib.nullcontext():
            for batch in generator.chunks(start, customers):
                writer(batch)
                for _m, _c, name in TABLES:
                    counts[name] += len(batch.rows(name))
                if progress:
                    progress(counts["customers"], customers - start)
        _reset_sequences()
        dataset.customers = customers
        dataset.save(update_fields=["customers", "updated_at"])
    if db.is_postgres():
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")
        from customers.services import search_statistics_refresh

        search_statistics_refresh()
    return {"loaded": counts["customers"], "total": customers, **counts}
