"""Public reference data for ``billing.tariff``: residential tariffs, VAT on electricity, business examples.

Prices are VND/kWh before VAT. Each history lists a structure's tables in date order.
"""

from __future__ import annotations

from datetime import date

from billing.tariff import PriceTable, Tier, VatRate

# Residential (sinh hoạt) tiers: 0–50, 51–100, 101–200, 201–300, 301–400, 401+ kWh a month.
RESIDENTIAL_TIER_UPPERS: tuple[int | None, ...] = (50, 100, 200, 300, 400, None)


def _residential(valid_from: date, prices: tuple[int, ...]) -> PriceTable:
    return PriceTable(
        kind="tiered",
        valid_from=valid_from,
        tiers=tuple(Tier(upper, price) for upper, price in zip(RESIDENTIAL_TIER_UPPERS, prices, strict=True)),
    )


RESIDENTIAL_TABLES: tuple[PriceTable, ...] = (
    _residential(date(2023, 11, 9), (1806, 1866, 2167, 2729, 3050, 3151)),
    _residential(date(2024, 10, 11), (1893, 1956, 2271, 2860, 3197, 3302)),
    _residential(date(2025, 5, 10), (1984, 2050, 2380, 2998, 3350, 3460)),
)

VAT_RATES: tuple[VatRate, ...] = (
    VatRate(date(2020, 1, 1), 10),  # standard rate, Law on VAT 13/2008/QH12
    VatRate(date(2022, 2, 1), 8),  # reduced through 2022-12-31 by Decree 15/2022/ND-CP
    VatRate(date(2023, 1, 1), 10),  # Decree 15/2022/ND-CP's reduction ended; standard rate again
    # Decree 44/2023/ND-CP from 2023-07-01, extended by 94/2023/ND-CP, 72/2024/ND-CP, 180/2024/ND-CP and
    # 174/2025/ND-CP (under Resolution 204/2025/QH15) through 2026-12-31.
    VatRate(date(2023, 7, 1), 8),
    VatRate(date(2027, 1, 1), 10),  # Decree 174/2025/ND-CP ends 2026-12-31; Law on VAT 48/2024/QH15's 10%
)

# Illustrative figures for examples and tests, not a published tariff: a single-rate business price.
BUSINESS_FLAT_TABLES: tuple[PriceTable, ...] = (
    PriceTable(kind="flat", valid_from=date(2025, 5, 10), tiers=(Tier(None, 3152),)),
)

# Illustrative figures for a small business customer on a time-of-use meter, not a published tariff.
BUSINESS_TOU_TABLES: tuple[PriceTable, ...] = (
    PriceTable(
        kind="tou",
        valid_from=date(2025, 5, 10),
        tou_prices=(("normal", 3152), ("peak", 5422), ("offpeak", 2015)),
    ),
)

# Illustrative single-rate prices for the other tariff categories (readings carry one register, so the
# time-of-use tables above are for examples until three-register readings are taken).
PRODUCTION_FLAT_TABLES: tuple[PriceTable, ...] = (
    PriceTable(kind="flat", valid_from=date(2025, 5, 10), tiers=(Tier(None, 1950),)),
)
ADMINISTRATIVE_FLAT_TABLES: tuple[PriceTable, ...] = (
    PriceTable(kind="flat", valid_from=date(2025, 5, 10), tiers=(Tier(None, 2071),)),
)

TABLES_BY_CATEGORY: dict[str, tuple[PriceTable, ...]] = {
    "residential": RESIDENTIAL_TABLES,
    "business": BUSINESS_FLAT_TABLES,
    "production": PRODUCTION_FLAT_TABLES,
    "administrative": ADMINISTRATIVE_FLAT_TABLES,
}

LEGAL_BASIS: dict[date, str] = {
    date(2023, 11, 9): "Quyết định 2941/QĐ-BCT (08/11/2023)",
    date(2024, 10, 11): "Quyết định 2699/QĐ-BCT (11/10/2024)",
    date(2025, 5, 10): "Quyết định 1279/QĐ-BCT (09/05/2025)",
}
