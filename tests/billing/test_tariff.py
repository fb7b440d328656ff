"""Electricity charges worked by hand: every expected number is computed in the comments, not by the code."""

from datetime import date
from decimal import Decimal

import pytest

from billing.reference import (
    BUSINESS_FLAT_TABLES,
    BUSINESS_TOU_TABLES,
    RESIDENTIAL_TABLES,
    RESIDENTIAL_TIER_UPPERS,
    VAT_RATES,
)
from billing.tariff import Charge, ChargeLine, PriceTable, Tier, VatRate, compute_charge, round_half_up

# The residential prices of 2023-05-04 (before the first table in billing.reference), for a VAT change test.
MAY_2023 = PriceTable(
    kind="tiered",
    valid_from=date(2023, 5, 4),
    tiers=tuple(
        Tier(upper, price)
        for upper, price in zip(RESIDENTIAL_TIER_UPPERS, (1728, 1786, 2074, 2612, 2919, 3015), strict=True)
    ),
)
VAT_10 = (VatRate(date(2020, 1, 1), 10),)
VAT_8 = (VatRate(date(2020, 1, 1), 8),)


def rows(charge: Charge) -> list[tuple[date, int | None, int, int, int]]:
    """(segment start, tier, kWh, price, amount) of each line."""
    return [(line.valid_from, line.tier, line.kwh, line.price, line.amount) for line in charge.lines]


def residential(start: date, end: date, kwh: int, households: int = 1) -> Charge:
    return compute_charge(
        start=start,
        end=end,
        consumption=kwh,
        tables=RESIDENTIAL_TABLES,
        vat_rates=VAT_RATES,
        households=households,
    )


# --- rounding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5", 3), ("3.5", 4), ("0.5", 1), ("2.4999", 2), ("2.5001", 3), ("7", 7), ("-2.5", -3)],
)
def test_round_half_up_rounds_halves_away_from_zero(value, expected):
    assert round_half_up(Decimal(value)) == expected


# --- a) one table, one VAT rate ----------------------------------------------------------------------------


def test_350_kwh_in_june_2025_fills_five_tiers():
    # given 350 kWh from 2025-06-01 to 2025-07-01: the 2025-05-10 table throughout, VAT 8% (since 2023-07-01)
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 350)

    # then the tiers fill 50 + 50 + 100 + 100 + 50 = 350:
    #   50 × 1984 =  99,200
    #   50 × 2050 = 102,500
    #  100 × 2380 = 238,000
    #  100 × 2998 = 299,800
    #   50 × 3350 = 167,500
    #   subtotal    907,000;  VAT 907,000 × 8 / 100 = 72,560;  total 979,560
    june, july = date(2025, 6, 1), date(2025, 7, 1)
    assert charge.lines == (
        ChargeLine(june, july, "Tier 1 (0–50 kWh)", 1, 50, 1984, 99_200, 8),
        ChargeLine(june, july, "Tier 2 (51–100 kWh)", 2, 50, 2050, 102_500, 8),
        ChargeLine(june, july, "Tier 3 (101–200 kWh)", 3, 100, 2380, 238_000, 8),
        ChargeLine(june, july, "Tier 4 (201–300 kWh)", 4, 100, 2998, 299_800, 8),
        ChargeLine(june, july, "Tier 5 (301–400 kWh)", 5, 50, 3350, 167_500, 8),
    )
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (350, 907_000, 72_560, 979_560)
    assert charge.vat_lines == ((june, 8, 907_000, 72_560),)


def test_vat_returns_to_10_percent_in_2027():
    # given the same 350 kWh in January 2027, after Decree 174/2025/ND-CP's reduction ends
    # when
    charge = residential(date(2027, 1, 1), date(2027, 2, 1), 350)

    # then the subtotal is the same 907,000 and VAT 907,000 × 10 / 100 = 90,700; total 997,700
    assert (charge.subtotal, charge.vat, charge.total) == (907_000, 90_700, 997_700)
    assert charge.vat_lines == ((date(2027, 1, 1), 10, 907_000, 90_700),)


# --- b) a price change in the middle of the period ---------------------------------------------------------


def test_price_change_halfway_splits_kwh_and_tier_widths_in_two():
    # given 300 kWh from 2025-04-25 to 2025-05-25: 30 days, 15 on the 2024-10-11 table (04-25 … 05-09) and
    # 15 on the 2025-05-10 table (05-10 … 05-24); VAT 8% throughout
    # when
    charge = residential(date(2025, 4, 25), date(2025, 5, 25), 300)

    # then each segment gets 300 × 15 / 30 = 150 kWh and tier widths 50 × 15/30 = 25 and 100 × 15/30 = 50,
    # so 150 = 25 + 25 + 50 + 50 in both:
    #   old:  25 × 1893 =  47,325   25 × 1956 =  48,900   50 × 2271 = 113,550   50 × 2860 = 143,000
    #         segment subtotal 352,775;  VAT 352,775 × 8 / 100 = 28,222
    #   new:  25 × 1984 =  49,600   25 × 2050 =  51,250   50 × 2380 = 119,000   50 × 2998 = 149,900
    #         segment subtotal 369,750;  VAT 369,750 × 8 / 100 = 29,580
    #   subtotal 352,775 + 369,750 = 722,525;  VAT once on the 8% sum: 722,525 × 8 / 100 = 57,802;  total 780,327
    old, new = date(2025, 4, 25), date(2025, 5, 10)
    assert rows(charge) == [
        (old, 1, 25, 1893, 47_325),
        (old, 2, 25, 1956, 48_900),
        (old, 3, 50, 2271, 113_550),
        (old, 4, 50, 2860, 143_000),
        (new, 1, 25, 1984, 49_600),
        (new, 2, 25, 2050, 51_250),
        (new, 3, 50, 2380, 119_000),
        (new, 4, 50, 2998, 149_900),
    ]
    assert [line.valid_to for line in charge.lines] == [new] * 4 + [date(2025, 5, 25)] * 4
    assert charge.vat_lines == ((old, 8, 722_525, 57_802),)
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (300, 722_525, 57_802, 780_327)


# --- c) uneven days: rounding and the remainder rule -------------------------------------------------------


def test_uneven_split_rounds_each_segment_and_the_last_takes_the_remainder():
    # given 500 kWh from 2025-04-20 to 2025-05-21: 31 days, 20 old (04-20 … 05-09), 11 new (05-10 … 05-20)
    # when
    charge = residential(date(2025, 4, 20), date(2025, 5, 21), 500)

    # then kWh: old 500 × 20/31 = 322.58 → 323;  new takes the rest, 500 − 323 = 177
    # old widths: 50 × 20/31 = 32.26 → 32;  100 × 20/31 = 64.52 → 65;  tier 6 takes 323 − 259 = 64
    #   32 × 1893 =  60,576   32 × 1956 =  62,592   65 × 2271 = 147,615
    #   65 × 2860 = 185,900   65 × 3197 = 207,805   64 × 3302 = 211,328
    #   segment subtotal 875,816;  VAT 875,816 × 8 / 100 = 70,065.28 → 70,065
    # new widths: 50 × 11/31 = 17.74 → 18;  100 × 11/31 = 35.48 → 35;  tier 6 takes 177 − 141 = 36
    #   18 × 1984 =  35,712   18 × 2050 =  36,900   35 × 2380 =  83,300
    #   35 × 2998 = 104,930   35 × 3350 = 117,250   36 × 3460 = 124,560
    #   segment subtotal 502,652;  VAT 502,652 × 8 / 100 = 40,212.16 → 40,212
    # subtotal 875,816 + 502,652 = 1,378,468;  VAT once on the 8% sum: 1,378,468 × 8 / 100 = 110,277.44 → 110,277;
    # total 1,488,745
    old, new = date(2025, 4, 20), date(2025, 5, 10)
    assert rows(charge) == [
        (old, 1, 32, 1893, 60_576),
        (old, 2, 32, 1956, 62_592),
        (old, 3, 65, 2271, 147_615),
        (old, 4, 65, 2860, 185_900),
        (old, 5, 65, 3197, 207_805),
        (old, 6, 64, 3302, 211_328),
        (new, 1, 18, 1984, 35_712),
        (new, 2, 18, 2050, 36_900),
        (new, 3, 35, 2380, 83_300),
        (new, 4, 35, 2998, 104_930),
        (new, 5, 35, 3350, 117_250),
        (new, 6, 36, 3460, 124_560),
    ]
    assert charge.lines[5].label == "Tier 6 (401+ kWh)"
    assert charge.vat_lines == ((old, 8, 1_378_468, 110_277),)
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (500, 1_378_468, 110_277, 1_488_745)


def test_an_exact_half_rounds_up_and_the_last_segment_keeps_the_sum_exact():
    # given 45 kWh from 2025-05-05 to 2025-05-15: 5 days old, 5 days new
    # when
    charge = residential(date(2025, 5, 5), date(2025, 5, 15), 45)

    # then old 45 × 5/10 = 22.5 → 23 (half-up, not 22), new 45 − 23 = 22 (rounding it alone would give 23
    # and 46 in all); tier 1 width 50 × 5/10 = 25 holds both
    #   23 × 1893 = 43,539;  VAT 43,539 × 8 / 100 = 3,483.12 → 3,483
    #   22 × 1984 = 43,648;  VAT 43,648 × 8 / 100 = 3,491.84 → 3,492
    #   subtotal 87,187;  VAT once on the 8% sum: 87,187 × 8 / 100 = 6,974.96 → 6,975;  total 94,162
    old, new = date(2025, 5, 5), date(2025, 5, 10)
    assert rows(charge) == [(old, 1, 23, 1893, 43_539), (new, 1, 22, 1984, 43_648)]
    assert charge.vat_lines == ((old, 8, 87_187, 6_975),)
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (45, 87_187, 6_975, 94_162)


def test_many_short_segments_that_all_round_up_never_go_negative():
    # given a flat price of 1,000 re-issued every day from 2025-01-01 to 2025-01-06, and 3 kWh over the six
    # days 2025-01-01 … 2025-01-06 (six one-day segments), VAT 10%
    tables = [
        PriceTable(kind="flat", valid_from=date(2025, 1, d), tiers=(Tier(None, 1000),)) for d in range(1, 7)
    ]

    # when
    charge = compute_charge(
        start=date(2025, 1, 1), end=date(2025, 1, 7), consumption=3, tables=tables, vat_rates=VAT_10
    )

    # then each day's share is 3 × 1/6 = 0.5 → 1 while kWh are left: 1, 1, 1, then 0, 0 and the last 0;
    # 3 lines of 1 × 1,000; VAT once on the 10% sum: 3,000 × 10 / 100 = 300
    assert [(line.valid_from, line.kwh, line.amount) for line in charge.lines] == [
        (date(2025, 1, 1), 1, 1000),
        (date(2025, 1, 2), 1, 1000),
        (date(2025, 1, 3), 1, 1000),
    ]
    assert charge.vat_lines == ((date(2025, 1, 1), 10, 3_000, 300),)
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (3, 3_000, 300, 3_300)


def test_a_price_change_and_a_vat_change_make_three_segments():
    # given flat 2,000 from 2023-01-01 and 2,100 from 2023-07-10; VAT 10% then 8% from 2023-07-01;
    # 301 kWh from 2023-06-21 to 2023-07-21: 30 days cut into 10 (06-21 … 06-30), 9 (07-01 … 07-09), 11 days
    tables = (
        PriceTable(kind="flat", valid_from=date(2023, 1, 1), tiers=(Tier(None, 2000),)),
        PriceTable(kind="flat", valid_from=date(2023, 7, 10), tiers=(Tier(None, 2100),)),
    )

    # when
    charge = compute_charge(
        start=date(2023, 6, 21), end=date(2023, 7, 21), consumption=301, tables=tables, vat_rates=VAT_RATES
    )

    # then kWh: 301 × 10/30 = 100.33 → 100;  301 × 9/30 = 90.3 → 90;  last 301 − 190 = 111
    #   100 × 2000 = 200,000;  VAT 10% = 20,000
    #    90 × 2000 = 180,000;  VAT  8% = 14,400
    #   111 × 2100 = 233,100;  VAT  8% = 233,100 × 8 / 100 = 18,648
    #   VAT once per rate: 10% on 200,000 = 20,000;  8% on 180,000 + 233,100 = 413,100 → 33,048
    #   subtotal 613,100;  VAT 53,048;  total 666,148
    june, july, tenth = date(2023, 6, 21), date(2023, 7, 1), date(2023, 7, 10)
    assert rows(charge) == [
        (june, None, 100, 2000, 200_000),
        (july, None, 90, 2000, 180_000),
        (tenth, None, 111, 2100, 233_100),
    ]
    assert charge.vat_lines == ((june, 10, 200_000, 20_000), (july, 8, 413_100, 33_048))
    assert (charge.subtotal, charge.vat, charge.total) == (613_100, 53_048, 666_148)


# --- d) households ---------------------------------------------------------------------------------------


def test_two_households_double_the_tier_widths():
    # given 350 kWh in June 2025 shared by two households: widths 100, 100, 200, 200, 200, rest
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 350, households=2)

    # then 350 = 100 + 100 + 150:
    #   100 × 1984 = 198,400   100 × 2050 = 205,000   150 × 2380 = 357,000
    #   subtotal 760,400;  VAT 760,400 × 8 / 100 = 60,832;  total 821,232
    june = date(2025, 6, 1)
    assert rows(charge) == [
        (june, 1, 100, 1984, 198_400),
        (june, 2, 100, 2050, 205_000),
        (june, 3, 150, 2380, 357_000),
    ]
    assert (charge.subtotal, charge.vat, charge.total) == (760_400, 60_832, 821_232)


def test_two_households_tier_labels_state_the_multiplied_widths():
    # given 250 kWh in June 2025 shared by two households: widths ×2 are 0–100, 101–200, 201–400, …
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 250, households=2)

    # then 250 = 100 + 100 + 50, each line labelled with the range it fills (not one household's 0–50 …):
    #   100 × 1984 + 100 × 2050 + 50 × 2380 = 198,400 + 205,000 + 119,000 = 522,400
    assert [(line.label, line.kwh) for line in charge.lines] == [
        ("Tier 1 (0–100 kWh)", 100), ("Tier 2 (101–200 kWh)", 100), ("Tier 3 (201–400 kWh)", 50),
    ]  # fmt: skip
    assert charge.subtotal == 522_400


def test_two_households_with_twice_the_kwh_pay_twice_one_households_bill():
    # given 700 kWh for two households in June 2025
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 700, households=2)

    # then 700 = 100 + 100 + 200 + 200 + 100:
    #   100 × 1984 = 198,400   100 × 2050 = 205,000   200 × 2380 = 476,000
    #   200 × 2998 = 599,600   100 × 3350 = 335,000
    #   subtotal 1,814,000 (= 2 × 907,000);  VAT 145,120;  total 1,959,120 (= 2 × 979,560)
    assert [(line.tier, line.kwh) for line in charge.lines] == [
        (1, 100),
        (2, 100),
        (3, 200),
        (4, 200),
        (5, 100),
    ]
    assert (charge.subtotal, charge.vat, charge.total) == (1_814_000, 145_120, 1_959_120)


# --- e) small bills ---------------------------------------------------------------------------------------


def test_zero_kwh_is_a_bill_of_nothing():
    # given no consumption in June 2025
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 0)

    # then
    assert charge.lines == ()
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (0, 0, 0, 0)
    assert charge.vat_lines == ((date(2025, 6, 1), 8, 0, 0),)


def test_40_kwh_stays_in_tier_1():
    # given 40 kWh in June 2025
    # when
    charge = residential(date(2025, 6, 1), date(2025, 7, 1), 40)

    # then 40 × 1984 = 79,360;  VAT 79,360 × 8 / 100 = 6,348.8 → 6,349;  total 85,709
    assert rows(charge) == [(date(2025, 6, 1), 1, 40, 1984, 79_360)]
    assert (charge.subtotal, charge.vat, charge.total) == (79_360, 6_349, 85_709)


# --- f) a VAT change in the middle of the period -----------------------------------------------------------


def test_vat_change_inside_the_period_gives_two_vat_lines():
    # given 150 kWh on the 2023-05-04 table from 2023-06-20 to 2023-07-20: 30 days, 11 at VAT 10%
    # (06-20 … 06-30) and 19 at 8% (07-01 … 07-19, Decree 44/2023/ND-CP)
    # when
    charge = compute_charge(
        start=date(2023, 6, 20),
        end=date(2023, 7, 20),
        consumption=150,
        tables=(MAY_2023, *RESIDENTIAL_TABLES),
        vat_rates=VAT_RATES,
    )

    # then kWh: 150 × 11/30 = 55 exactly;  the rest 150 − 55 = 95
    # June widths 50 × 11/30 = 18.33 → 18 and 100 × 11/30 = 36.67 → 37, so 55 = 18 + 18 + 19:
    #   18 × 1728 = 31,104   18 × 1786 = 32,148   19 × 2074 = 39,406
    #   base 102,658;  VAT 102,658 × 10 / 100 = 10,265.8 → 10,266
    # July widths 50 × 19/30 = 31.67 → 32 and 100 × 19/30 = 63.33 → 63, so 95 = 32 + 32 + 31:
    #   32 × 1728 = 55,296   32 × 1786 = 57,152   31 × 2074 = 64,294
    #   base 176,742;  VAT 176,742 × 8 / 100 = 14,139.36 → 14,139
    # subtotal 279,400;  VAT 24,405;  total 303,805
    june, july = date(2023, 6, 20), date(2023, 7, 1)
    assert rows(charge) == [
        (june, 1, 18, 1728, 31_104),
        (june, 2, 18, 1786, 32_148),
        (june, 3, 19, 2074, 39_406),
        (july, 1, 32, 1728, 55_296),
        (july, 2, 32, 1786, 57_152),
        (july, 3, 31, 2074, 64_294),
    ]
    assert [line.vat_percent for line in charge.lines] == [10, 10, 10, 8, 8, 8]
    assert charge.vat_lines == ((june, 10, 102_658, 10_266), (july, 8, 176_742, 14_139))
    assert (charge.subtotal, charge.vat, charge.total) == (279_400, 24_405, 303_805)


def test_vat_of_exactly_half_a_dong_rounds_up():
    # given a flat 3,001 VND/kWh, VAT 10%, and 25 kWh
    tables = (PriceTable(kind="flat", valid_from=date(2025, 1, 1), tiers=(Tier(None, 3001),)),)

    # when
    charge = compute_charge(
        start=date(2025, 6, 1), end=date(2025, 7, 1), consumption=25, tables=tables, vat_rates=VAT_10
    )

    # then 25 × 3001 = 75,025;  VAT 7,502.5 → 7,503;  total 82,528
    assert (charge.subtotal, charge.vat, charge.total) == (75_025, 7_503, 82_528)


# --- g) any number of tiers --------------------------------------------------------------------------------


def test_a_five_tier_structure_needs_no_code_change():
    # given made-up tiers 0–100, 101–200, 201–400, 401–700, 701+ at 1,500 / 2,000 / 2,500 / 3,000 / 3,500,
    # VAT 8%, 800 kWh in March 2026
    five = PriceTable(
        kind="tiered",
        valid_from=date(2026, 1, 1),
        tiers=(Tier(100, 1500), Tier(200, 2000), Tier(400, 2500), Tier(700, 3000), Tier(None, 3500)),
    )

    # when
    charge = compute_charge(
        start=date(2026, 3, 1), end=date(2026, 3, 31), consumption=800, tables=[five], vat_rates=VAT_8
    )

    # then 800 = 100 + 100 + 200 + 300 + 100:
    #   100 × 1500 = 150,000   100 × 2000 = 200,000   200 × 2500 = 500,000
    #   300 × 3000 = 900,000   100 × 3500 = 350,000
    #   subtotal 2,100,000;  VAT 168,000;  total 2,268,000
    march = date(2026, 3, 1)
    assert rows(charge) == [
        (march, 1, 100, 1500, 150_000),
        (march, 2, 100, 2000, 200_000),
        (march, 3, 200, 2500, 500_000),
        (march, 4, 300, 3000, 900_000),
        (march, 5, 100, 3500, 350_000),
    ]
    assert [line.label for line in charge.lines] == [
        "Tier 1 (0–100 kWh)",
        "Tier 2 (101–200 kWh)",
        "Tier 3 (201–400 kWh)",
        "Tier 4 (401–700 kWh)",
        "Tier 5 (701+ kWh)",
    ]
    assert (charge.subtotal, charge.vat, charge.total) == (2_100_000, 168_000, 2_268_000)


# --- h) flat and time-of-use -------------------------------------------------------------------------------


def test_flat_business_table():
    # given 1,000 kWh in June 2025 on the business flat table (3,152), VAT 8%
    # when
    charge = compute_charge(
        start=date(2025, 6, 1),
        end=date(2025, 7, 1),
        consumption=1000,
        tables=BUSINESS_FLAT_TABLES,
        vat_rates=VAT_RATES,
    )

    # then 1,000 × 3,152 = 3,152,000;  VAT 252,160;  total 3,404,160
    assert charge.lines == (
        ChargeLine(date(2025, 6, 1), date(2025, 7, 1), "Flat", None, 1000, 3152, 3_152_000, 8),
    )
    assert (charge.subtotal, charge.vat, charge.total) == (3_152_000, 252_160, 3_404_160)


def test_time_of_use_business_table():
    # given normal 600, peak 150, off-peak 250 kWh in June 2025, VAT 8%
    # when
    charge = compute_charge(
        start=date(2025, 6, 1),
        end=date(2025, 7, 1),
        consumption={"peak": 150, "normal": 600, "offpeak": 250},
        tables=BUSINESS_TOU_TABLES,
        vat_rates=VAT_RATES,
    )

    # then 600 × 3152 = 1,891,200;  150 × 5422 = 813,300;  250 × 2015 = 503,750
    #   subtotal 3,208,250;  VAT 3,208,250 × 8 / 100 = 256,660;  total 3,464,910
    assert [(line.label, line.tier, line.kwh, line.price, line.amount) for line in charge.lines] == [
        ("Normal", None, 600, 3152, 1_891_200),
        ("Peak", None, 150, 5422, 813_300),
        ("Off-peak", None, 250, 2015, 503_750),
    ]
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (1000, 3_208_250, 256_660, 3_464_910)


def test_time_of_use_price_change_splits_each_register():
    # given made-up prices from 2025-01-01 (normal 3,000, peak 5,000, off-peak 2,000), then the 2025-05-10
    # table; normal 101, peak 30, off-peak 45 kWh from 2025-05-05 to 2025-05-15 (5 days each side), VAT 8%
    tables = (
        PriceTable(
            kind="tou",
            valid_from=date(2025, 1, 1),
            tou_prices=(("normal", 3000), ("peak", 5000), ("offpeak", 2000)),
        ),
        *BUSINESS_TOU_TABLES,
    )

    # when
    charge = compute_charge(
        start=date(2025, 5, 5),
        end=date(2025, 5, 15),
        consumption={"normal": 101, "peak": 30, "offpeak": 45},
        tables=tables,
        vat_rates=VAT_RATES,
    )

    # then per register: normal 50.5 → 51 then 50;  peak 15 and 15;  off-peak 22.5 → 23 then 22
    #   old: 51 × 3000 = 153,000   15 × 5000 = 75,000   23 × 2000 = 46,000   base 274,000;  VAT 21,920
    #   new: 50 × 3152 = 157,600   15 × 5422 = 81,330   22 × 2015 = 44,330   base 283,260;  VAT 22,660.8 → 22,661
    #   subtotal 557,260;  VAT once on the 8% sum: 557,260 × 8 / 100 = 44,580.8 → 44,581;  total 601,841
    old, new = date(2025, 5, 5), date(2025, 5, 10)
    assert rows(charge) == [
        (old, None, 51, 3000, 153_000),
        (old, None, 15, 5000, 75_000),
        (old, None, 23, 2000, 46_000),
        (new, None, 50, 3152, 157_600),
        (new, None, 15, 5422, 81_330),
        (new, None, 22, 2015, 44_330),
    ]
    assert charge.vat_lines == ((old, 8, 557_260, 44_581),)
    assert (charge.kwh, charge.subtotal, charge.vat, charge.total) == (176, 557_260, 44_581, 601_841)


# --- reference data ----------------------------------------------------------------------------------------


def test_residential_tables_share_the_six_tier_uppers_in_date_order():
    assert [tuple(tier.upper_kwh for tier in table.tiers) for table in RESIDENTIAL_TABLES] == [
        RESIDENTIAL_TIER_UPPERS
    ] * 3
    assert [table.valid_from for table in RESIDENTIAL_TABLES] == [
        date(2023, 11, 9),
        date(2024, 10, 11),
        date(2025, 5, 10),
    ]
    assert [(rate.valid_from, rate.percent) for rate in VAT_RATES] == [
        (date(2020, 1, 1), 10),
        (date(2022, 2, 1), 8),
        (date(2023, 1, 1), 10),
        (date(2023, 7, 1), 8),
        (date(2027, 1, 1), 10),
    ]


# --- i) errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("end", [date(2025, 6, 1), date(2025, 5, 31)])
def test_period_must_end_after_it_starts(end):
    with pytest.raises(ValueError, match="must end after it starts"):
        residential(date(2025, 6, 1), end, 100)


@pytest.mark.parametrize("kwh", [-1, True, "100", Decimal("1.5")])
def test_consumption_must_be_whole_kwh_not_below_zero(kwh):
    with pytest.raises(ValueError, match="consumption must be a whole number of kWh"):
        residential(date(2025, 6, 1), date(2025, 7, 1), kwh)


def test_period_before_the_first_table_is_refused():
    # the first residential table is valid from 2023-11-09
    with pytest.raises(ValueError, match=r"no price table in force on 2023-11-01.*valid from 2023-11-09"):
        residential(date(2023, 11, 1), date(2023, 12, 1), 100)


def test_period_before_the_first_vat_rate_is_refused():
    with pytest.raises(ValueError, match="no VAT rate in force on 2025-06-01"):
        compute_charge(
            start=date(2025, 6, 1),
            end=date(2025, 7, 1),
            consumption=100,
            tables=RESIDENTIAL_TABLES,
            vat_rates=[VatRate(date(2030, 1, 1), 10)],
        )


def test_tables_of_different_kinds_are_refused():
    with pytest.raises(ValueError, match=r"mix kinds \(flat, tiered\)"):
        compute_charge(
            start=date(2025, 6, 1),
            end=date(2025, 7, 1),
            consumption=100,
            tables=(*RESIDENTIAL_TABLES, *BUSINESS_FLAT_TABLES),
            vat_rates=VAT_RATES,
        )


@pytest.mark.parametrize(
    ("tables", "vat_rates", "message"),
    [
        ((), VAT_RATES, "no price tables given"),
        (RESIDENTIAL_TABLES, (), "no VAT rates given"),
        (
            (*RESIDENTIAL_TABLES, RESIDENTIAL_TABLES[0]),
            VAT_RATES,
            "two price tables are valid from 2023-11-09",
        ),
        (
            RESIDENTIAL_TABLES,
            (*VAT_RATES, VatRate(date(2023, 7, 1), 10)),
            "two VAT rates are valid from 2023-07-01",
        ),
    ],
)
def test_empty_or_ambiguous_histories_are_refused(tables, vat_rates, message):
    with pytest.raises(ValueError, match=message):
        compute_charge(
            start=date(2025, 6, 1), end=date(2025, 7, 1), consumption=100, tables=tables, vat_rates=vat_rates
        )


def test_households_must_be_at_least_one():
    with pytest.raises(ValueError, match="households must be a whole number ≥ 1"):
        residential(date(2025, 6, 1), date(2025, 7, 1), 100, households=0)


@pytest.mark.parametrize(
    ("kind", "tiers", "tou_prices", "message"),
    [
        ("tiered", (Tier(100, 1000), Tier(50, 1100), Tier(None, 1200)), (), "increasing strictly"),
        ("tiered", (Tier(50, 1000), Tier(50, 1100), Tier(None, 1200)), (), "increasing strictly"),
        ("tiered", (Tier(0, 1000), Tier(None, 1200)), (), "increasing strictly"),
        ("tiered", (Tier(None, 1000), Tier(50, 1100)), (), "only the last tier may have no upper bound"),
        ("tiered", (Tier(50, 1000), Tier(100, 1100)), (), "the last tier must have no upper bound"),
        ("tiered", (Tier(50, 0), Tier(None, 1100)), (), "tier 1 price must be a positive integer"),
        ("tiered", (Tier(50, 1000), Tier(None, -5)), (), "tier 2 price must be a positive integer"),
        (
            "tiered",
            (Tier(50, Decimal("1000.5")), Tier(None, 1100)),  # type: ignore[arg-type]
            (),
            "tier 1 price must be a positive integer",
        ),
        ("tiered", (), (), "needs at least one tier"),
        ("tiered", (Tier(None, 1000),), (("peak", 5000),), "belong to a 'tou' table only"),
        ("flat", (Tier(50, 1000), Tier(None, 1100)), (), "a flat table has exactly one tier"),
        ("tou", (), (), "needs at least one register price"),
        ("tou", (Tier(None, 1000),), (("peak", 5000),), "register prices, not tiers"),
        ("tou", (), (("night", 1000),), "unknown register 'night'"),
        ("tou", (), (("peak", 5000), ("peak", 5100)), "register 'peak' is priced twice"),
        ("tou", (), (("peak", 0),), "peak price must be a positive integer"),
        ("block", (), (), "unknown price table kind 'block'"),
    ],
)
def test_malformed_price_tables_are_refused(kind, tiers, tou_prices, message):
    with pytest.raises(ValueError, match=message):
        PriceTable(kind=kind, valid_from=date(2025, 1, 1), tiers=tiers, tou_prices=tou_prices)


@pytest.mark.parametrize("percent", [-1, 101, Decimal("8.5")])
def test_vat_percent_must_be_a_whole_percentage(percent):
    with pytest.raises(ValueError, match="percent must be an integer 0–100"):
        VatRate(date(2025, 1, 1), percent)


@pytest.mark.parametrize(
    ("consumption", "message"),
    [
        (100, "time-of-use consumption must be a mapping"),
        ({"night": 10}, "unknown register 'night'"),
        ({"peak": -1}, "peak consumption must be a whole number of kWh"),
    ],
)
def test_time_of_use_consumption_must_be_registers_with_whole_kwh(consumption, message):
    with pytest.raises(ValueError, match=message):
        compute_charge(
            start=date(2025, 6, 1),
            end=date(2025, 7, 1),
            consumption=consumption,
            tables=BUSINESS_TOU_TABLES,
            vat_rates=VAT_RATES,
        )


def test_a_register_the_table_does_not_price_is_refused():
    peak_only = (PriceTable(kind="tou", valid_from=date(2025, 1, 1), tou_prices=(("peak", 5000),)),)
    with pytest.raises(ValueError, match="has no price for normal"):
        compute_charge(
            start=date(2025, 6, 1),
            end=date(2025, 7, 1),
            consumption={"normal": 10, "peak": 5},
            tables=peak_only,
            vat_rates=VAT_RATES,
        )


def test_a_register_mapping_is_refused_for_a_tiered_table():
    with pytest.raises(ValueError, match="consumption must be a whole number of kWh"):
        residential(date(2025, 6, 1), date(2025, 7, 1), {"normal": 100})  # type: ignore[arg-type]
