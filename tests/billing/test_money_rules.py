"""The money rules of a bill, worked by hand: VAT once per rate, tier widths that add up across a price change,
rebates per VAT rate, refund offsets taken against the amount due, and the same đồng on SQLite and
PostgreSQL. Every expected number is computed in the comments, not by the code."""

import importlib
import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import (
    Adjustment,
    AuditRecord,
    Invoice,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Refund,
    VatRate,
)
from billing.money import money
from billing.reference import RESIDENTIAL_TABLES, VAT_RATES
from billing.selectors import card_invoices
from billing.tariff import PriceTable, Tier, compute_charge, rebate_parts
from crm.models import Role
from tests.billing.conftest import NOV, OCT

# The residential prices of 2023-05-04 (before the first table in billing.reference).
MAY_2023 = PriceTable(
    kind="tiered",
    valid_from=date(2023, 5, 4),
    tiers=(
        Tier(50, 1728),
        Tier(100, 1786),
        Tier(200, 2074),
        Tier(300, 2612),
        Tier(400, 2919),
        Tier(None, 3015),
    ),
)
# Made-up prices for a change on 8 February 2025.
JAN = PriceTable(
    kind="tiered",
    valid_from=date(2025, 1, 1),
    tiers=(Tier(50, 1000), Tier(100, 2000), Tier(200, 3000), Tier(None, 4000)),
)
FEB_8 = PriceTable(
    kind="tiered",
    valid_from=date(2025, 2, 8),
    tiers=(Tier(50, 1100), Tier(100, 2200), Tier(200, 3300), Tier(None, 4400)),
)

# (case, start, end, kWh, tables, rebate percents) → (kWh, amount) of each line, subtotal, VAT, total after the
# rebates, and the (amount, VAT) of each rebate's part per VAT rate.
CASES = [
    pytest.param(
        # May 2025: 9 days on the 2024-10-11 table (05-01 … 05-09), 22 on the 2025-05-10 one; VAT 8% throughout.
        # kWh 7 × 9/31 = 2.03 → 2, the rest 5:  2 × 1893 = 3,786;  5 × 1984 = 9,920;  subtotal 13,706.
        # VAT once on the 8% sum: 13,706 × 8 / 100 = 1,096.48 → 1,096 (per segment it was 302.88 → 303 and
        # 793.6 → 794, 1,097: one đồng off).  Total 14,802.
        date(2025, 5, 1), date(2025, 6, 1), 7, RESIDENTIAL_TABLES, (),
        ([(2, 3_786), (5, 9_920)], 13_706, 1_096, 14_802, []),
        id="vat-once-per-rate-not-per-segment",
    ),
    pytest.param(
        # February 2025 (28 days), prices change on the 8th: 7 days old, 21 new; VAT 8%; 200 kWh.
        # kWh 200 × 7/28 = 50, the rest 150.
        # Tier 1 and 2 widths 50 × 7/28 = 12.5 → 13, the last segment takes the rest 50 − 13 = 37 (not
        # 50 × 21/28 = 37.5 → 38, which made 51 kWh in each tier); tier 3 width 100 × 7/28 = 25, then 75.
        #   old: 13 × 1000 = 13,000   13 × 2000 = 26,000   24 × 3000 = 72,000              (50 kWh)
        #   new: 37 × 1100 = 40,700   37 × 2200 = 81,400   75 × 3300 = 247,500   1 × 4400 = 4,400  (150 kWh)
        # subtotal 485,000;  VAT 485,000 × 8 / 100 = 38,800;  total 523,800
        date(2025, 2, 1), date(2025, 3, 1), 200, (JAN, FEB_8), (),
        ([(13, 13_000), (13, 26_000), (24, 72_000), (37, 40_700), (37, 81_400), (75, 247_500), (1, 4_400)],
         485_000, 38_800, 523_800, []),
        id="tier-widths-add-up-across-a-price-change",
    ),
    pytest.param(
        # 150 kWh on the 2023-05-04 table from 2023-06-20 to 2023-07-20: 11 days at VAT 10%, 19 at 8%.
        # Lines (worked in test_tariff): 10%: 31,104 + 32,148 + 39,406 = 102,658;  8%: 55,296 + 57,152 + 64,294
        # = 176,742.  A 10% rebate reduces each rate's lines:
        #   10%: 102,658 × 10 / 100 = 10,265.8 → 10,266;  VAT 102,658 → 10,265.8 → 10,266, after
        #        92,392 × 10 / 100 = 9,239.2 → 9,239: the rebate's VAT 10,266 − 9,239 = 1,027
        #    8%: 176,742 × 10 / 100 = 17,674.2 → 17,674;  VAT 176,742 × 8 / 100 = 14,139.36 → 14,139, after
        #        159,068 × 8 / 100 = 12,725.44 → 12,725: the rebate's VAT 14,139 − 12,725 = 1,414
        # (at the highest rate alone it was 27,940 × 10% = 2,794).
        # subtotal 92,392 + 159,068 = 251,460;  VAT 9,239 + 12,725 = 21,964;  total 273,424
        date(2023, 6, 20), date(2023, 7, 20), 150, (MAY_2023, *RESIDENTIAL_TABLES), (Decimal("10"),),
        ([(18, 31_104), (18, 32_148), (19, 39_406), (32, 55_296), (32, 57_152), (31, 64_294)],
         251_460, 21_964, 273_424, [[(10_266, 1_027), (17_674, 1_414)]]),
        id="rebate-vat-per-rate-of-the-lines-it-reduces",
    ),
    pytest.param(
        # 350 kWh in October 2025 (2025-05-10 table, VAT 8%): 50 × 1984 + 50 × 2050 + 100 × 2380 + 100 × 2998
        # + 50 × 3350 = 99,200 + 102,500 + 238,000 + 299,800 + 167,500 = 907,000;  VAT 72,560.
        # Rebate 1.15%: 907,000 × 1.15 / 100 = 10,430.5 → 10,431 (half up; floating point made it 10,430).
        # VAT after: 896,569 × 8 / 100 = 71,725.52 → 71,726: the rebate's VAT 72,560 − 71,726 = 834.
        # Then 5% on what is left: 896,569 × 5 / 100 = 44,828.45 → 44,828;  VAT after 851,741 × 8 / 100
        # = 68,139.28 → 68,139: its VAT 71,726 − 68,139 = 3,587.
        # subtotal 851,741;  VAT 68,139;  total 919,880
        date(2025, 10, 1), date(2025, 11, 1), 350, RESIDENTIAL_TABLES, (Decimal("1.15"), Decimal("5")),
        ([(50, 99_200), (50, 102_500), (100, 238_000), (100, 299_800), (50, 167_500)],
         851_741, 68_139, 919_880, [[(10_431, 834)], [(44_828, 3_587)]]),
        id="rebates-one-after-another-half-up",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("start", "end", "kwh", "tables", "rebates", "expected"), CASES)
def test_compute_charge_follows_the_one_rounding_rule(start, end, kwh, tables, rebates, expected):
    charge = compute_charge(start=start, end=end, consumption=kwh, tables=tables, vat_rates=VAT_RATES,
                            rebates=rebates)  # fmt: skip
    lines, subtotal, vat, total, parts = expected
    assert [(line.kwh, line.amount) for line in charge.lines] == lines
    assert (charge.subtotal, charge.vat, charge.total) == (subtotal, vat, total)
    assert [[(part.amount, part.vat) for part in applied] for applied in charge.rebates] == parts


def test_may_2025_vat_is_the_vat_of_the_rate_sum_for_every_kwh_from_0_to_999():
    # VAT 8% throughout May 2025: whatever the segments, the VAT is round_half_up(subtotal × 8 / 100).
    for kwh in range(1000):
        charge = compute_charge(start=date(2025, 5, 1), end=date(2025, 6, 1), consumption=kwh,
                                tables=RESIDENTIAL_TABLES, vat_rates=VAT_RATES)  # fmt: skip
        assert charge.vat == (2 * charge.subtotal * 8 + 100) // 200, kwh
        assert charge.total == charge.subtotal + charge.vat


def test_a_rebate_on_a_rate_with_nothing_takes_nothing():
    # 0 on the 10% rate, 1,000 on the 8% rate, 50%: 500 off the 8% lines; VAT 80 → 40: 40.
    assert [(p.vat_percent, p.amount, p.vat) for p in rebate_parts({10: 0, 8: 1000}, Decimal("50"))] == [
        (8, 500, 40)
    ]


# --- rebates on bills: the set-based SQL and the recompute give the pure function's đồng --------------------


def _programme(percent: str, period=OCT) -> RebateProgramme:
    programme = RebateProgramme.objects.create(name=f"Giảm {percent}%", legal_basis="Nghị quyết", period_from=period,
                                               period_to=period)  # fmt: skip
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
    return programme


def test_a_rebate_round_rounds_half_up_in_whole_numbers_on_every_database(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    programme = _programme("1.15")
    # 350 kWh in October 2025: subtotal 907,000, VAT 72,560 (see CASES).
    # 907,000 × 1.15 / 100 = 10,430.5 → 10,431 (SQLite's floating point made it 10,430);
    # VAT after 896,569 × 8 / 100 = 71,725.52 → 71,726: the reduction's VAT 72,560 − 71,726 = 834.
    # subtotal 896,569;  VAT 71,726;  total 968,295
    assert billing.rebate_dry_run(programme=programme)["amount"] == 10_431
    assert billing.rebate_apply(actor=None, programme=programme) == {
        "invoices": 1,
        "amount": 10_431,
        "vat": 834,
    }
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.subtotal, invoice.vat, invoice.total) == (896_569, 71_726, 968_295)
    charge = billing.charge_for(category="residential", period=OCT, kwh=350, rebates=[Decimal("1.15")])
    assert (charge.subtotal, charge.vat, charge.total) == (896_569, 71_726, 968_295)
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal


def test_a_rebate_takes_its_vat_at_the_rates_of_the_lines_it_reduces(client, clerks, make_customer, read):
    # VAT 10% from 2025-10-16: October is 15 days at 8% and 16 at 10%.
    VatRate.objects.create(valid_from=date(2025, 10, 16), percent=10)
    customer = make_customer()
    reading = read(customer, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    # kWh 150 × 15/31 = 72.58 → 73, the rest 77; tier 1 and 2 widths 50 × 15/31 = 24.19 → 24, then 26;
    # tier 3 100 × 15/31 = 48.39 → 48, then 52.  8%: 24 × 1984 = 47,616  24 × 2050 = 49,200  25 × 2380 = 59,500
    # = 156,316, VAT 12,505.28 → 12,505;  10%: 26 × 1984 = 51,584  26 × 2050 = 53,300  25 × 2380 = 59,500
    # = 164,384, VAT 16,438.4 → 16,438.  Subtotal 320,700;  VAT 28,943.
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.subtotal, invoice.vat) == (320_700, 28_943)
    billing.rebate_apply(actor=None, programme=_programme("15"))
    # 10%: 164,384 × 15 / 100 = 24,657.6 → 24,658;  VAT after 139,726 × 10 / 100 = 13,972.6 → 13,973: 2,465
    #  8%: 156,316 × 15 / 100 = 23,447.4 → 23,447;  VAT after 132,869 × 8 / 100 = 10,629.52 → 10,630: 1,875
    # (at the highest rate alone: 48,105 × 10 / 100 = 4,810.5 → 4,811)
    # subtotal 320,700 − 48,105 = 272,595;  VAT 28,943 − 4,340 = 24,603;  total 297,198
    invoice.refresh_from_db()
    assert (invoice.subtotal, invoice.vat, invoice.total) == (272_595, 24_603, 297_198)
    rebate_lines = invoice.lines.filter(label__startswith="Rebate").order_by("position")
    assert [(line.amount, line.vat_percent) for line in rebate_lines] == [(-24_658, 10), (-23_447, 8)]
    application = RebateApplication.objects.get()
    assert (application.amount, application.vat) == (48_105, 4_340)
    # The printed page states each rate's base less its rebate and the VAT on it, adding up to the bill's VAT:
    # 8%: 132,869 (VAT 10,630); 10%: 139,726 (VAT 13,973); 10,630 + 13,973 = 24,603.
    client.force_login(clerks[0])
    response = client.get(reverse("admin:billing_invoice_print", args=[invoice.pk]))
    assert response.context["rates"] == [
        {"percent": 8, "base": 132_869, "vat": 10_630}, {"percent": 10, "base": 139_726, "vat": 13_973},
    ]  # fmt: skip
    assert sum(rate["vat"] for rate in response.context["rates"]) == invoice.vat
    # A correction before issue recomputes the bill and its rebate by the same rule as the pure function.
    billing.reading_correct(actor=None, reading=reading, value=reading.value - 50, reason="Đọc sai")
    invoice.refresh_from_db()
    charge = billing.charge_for(category="residential", period=OCT, kwh=100, rebates=[Decimal("15")])
    assert (invoice.kwh, invoice.subtotal, invoice.vat, invoice.total) == (
        100,
        charge.subtotal,
        charge.vat,
        charge.total,
    )
    application.refresh_from_db()
    assert (application.amount, application.vat) == (
        sum(p.amount for p in charge.rebates[0]),
        sum(p.vat for p in charge.rebates[0]),
    )
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal


# --- refund offsets: taken against the amount due, never the charge ---------------------------------------

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


@pytest.fixture
def clerks(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]]), make_staff(Role.BILLING_CLERK, [org["home"]])


def _refund_of_180_900(make_customer, read, clerks):
    """October 2025, 350 kWh issued (907,000 + 72,560 = 979,560), corrected to 300 kWh: 99,200 + 102,500 +
    238,000 + 299,800 = 739,500 + VAT 59,160 = 798,660. The adjustment is −167,500 − 13,400 = −180,900: a
    refund of 180,900."""
    proposer, approver = clerks
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    original = Invoice.objects.get(customer=customer, period=OCT)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=300, record="Biên bản 12")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    refund = Refund.objects.get(adjustment=adjustment)
    assert refund.amount == 180_900
    return customer, refund


def _next_bill(customer, read, kwh) -> Invoice:
    read(customer, NOV, 350 + kwh)
    billing.billing_run(actor=None, period=NOV)
    return Invoice.objects.get(customer=customer, period=NOV)


def _state(invoice: Invoice, refund: Refund):
    invoice.refresh_from_db()
    refund.refresh_from_db()
    lines = list(invoice.lines.order_by("position").values_list("amount", "vat_percent"))
    return (invoice.subtotal, invoice.vat, invoice.total, invoice.refund_offset, lines, refund.method,
            refund.offset_invoice_id)  # fmt: skip


def test_an_offset_comes_off_the_amount_due_and_leaves_the_charge_and_its_vat(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    # November 200 kWh: 99,200 + 102,500 + 238,000 = 439,700;  VAT 35,176;  total 474,876.
    nxt = _next_bill(customer, read, 200)
    charge_lines = list(nxt.lines.order_by("position").values_list("amount", "vat_percent"))
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    # The charge stays; the offset is recorded apart: amount due 474,876 − 180,900 = 293,976.
    assert _state(nxt, refund) == (439_700, 35_176, 474_876, 180_900, charge_lines, "offset", nxt.pk)
    assert nxt.amount_due == 293_976
    # The customer card tells the agent both: the bill's charge and what the customer pays.
    section = card_invoices(customer=customer, user=clerks[1])
    (row,) = [r for r in section["rows"] if r[0] == nxt.number]
    assert (row[3], row[4]) == (money(474_876), money(293_976))


def test_a_refund_between_the_subtotal_and_the_total_is_offset(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    # November 88 kWh: 99,200 + 38 × 2,050 = 177,100;  VAT 14,168;  total 191,268.  The refund 180,900 is above
    # the subtotal and below the total (it used to break the subtotal's check): amount due 10,368.
    nxt = _next_bill(customer, read, 88)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    nxt.refresh_from_db()
    assert (nxt.subtotal, nxt.vat, nxt.total, nxt.refund_offset, nxt.amount_due) == (
        177_100,
        14_168,
        191_268,
        180_900,
        10_368,
    )


def test_a_refund_larger_than_the_amount_due_is_refused_and_changes_nothing(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    # November 80 kWh: 99,200 + 30 × 2,050 = 160,700;  VAT 12,856;  total 173,556 < 180,900.
    nxt = _next_bill(customer, read, 80)
    before = _state(nxt, refund)
    with pytest.raises(ValidationError, match=r"larger than the amount due on bill .*173\.556 ₫"):
        billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    assert _state(nxt, refund) == before
    assert before[3:] == (0, before[4], "", None)


def test_the_database_refuses_an_offset_above_the_total(make_customer, read, clerks):
    customer, _refund = _refund_of_180_900(make_customer, read, clerks)
    nxt = _next_bill(customer, read, 80)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=nxt.pk).update(refund_offset=nxt.total + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=nxt.pk).update(refund_offset=-1)
    nxt.refresh_from_db()
    assert nxt.refund_offset == 0


def test_an_adjustment_with_the_same_kwh_on_a_bill_with_an_offset_has_nothing_to_adjust(
    make_customer, read, clerks
):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    nxt = _next_bill(customer, read, 200)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    billing.invoices_issue(actor=None, period=NOV)
    proposals = Adjustment.objects.count()
    # The charge of 200 kWh is the bill's charge: the offset is a settlement, not a difference to claw back.
    with pytest.raises(ValidationError, match="nothing to adjust"):
        billing.adjustment_propose(actor=clerks[0], invoice=nxt, kwh=200, record="Biên bản 13")
    assert Adjustment.objects.count() == proposals
    # 150 kWh: 99,200 + 102,500 + 119,000 = 320,700 + 25,656 = 346,356; the difference with 439,700 + 35,176
    # = 474,876 is −119,000 − 9,520 = −128,520, whatever the offset.
    adjustment = billing.adjustment_propose(actor=clerks[0], invoice=nxt, kwh=150, record="Biên bản 14")
    assert (adjustment.delta_subtotal, adjustment.delta_vat, adjustment.delta_total) == (
        -119_000,
        -9_520,
        -128_520,
    )


def test_a_recompute_below_the_offsets_releases_the_offset(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    nxt = _next_bill(customer, read, 200)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    reading = nxt.reading
    # Corrected to 150 kWh: total 346,356 still covers 180,900: the offset stays, amount due 165,456.
    reading = billing.reading_correct(actor=clerks[0], reading=reading, value=350 + 150, reason="Đọc sai")
    nxt.refresh_from_db()
    assert (nxt.total, nxt.refund_offset, nxt.amount_due) == (346_356, 180_900, 165_456)
    # Corrected to 80 kWh: total 173,556 < 180,900: the offset is released, the refund open again.
    billing.reading_correct(actor=clerks[0], reading=reading, value=350 + 80, reason="Đọc sai lần nữa")
    nxt.refresh_from_db()
    refund.refresh_from_db()
    assert (nxt.total, nxt.refund_offset, refund.method, refund.offset_invoice) == (173_556, 0, "", None)


def test_the_offset_on_the_next_bill_in_the_admin(client, make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    small = _next_bill(customer, read, 80)  # total 173,556: too small for 180,900
    clerk = clerks[1]
    client.force_login(clerk)
    url = reverse("admin:billing_refund_changelist")
    asked = client.post(url, {"action": "offset_on_next_bill", "_selected_action": [refund.pk]}, **VI)
    page = asked.content.decode()
    # The bill is offered by its number and amount due, never by a database id.
    assert asked.status_code == 200 and list(asked.context["form"].fields["invoice"].choices) == [
        (small.number, f"{small.number}, 11/2025: số tiền phải trả 173.556 ₫")
    ]
    assert f'value="{small.number}"' in page
    before = _state(small, refund)
    refused = client.post(url, {"action": "offset_on_next_bill", "_selected_action": [refund.pk], "_confirmed": "1",
                                "invoice": small.number}, **VI)  # fmt: skip
    assert refused.status_code == 200
    assert "lớn hơn số tiền phải trả của hóa đơn" in refused.content.decode()
    assert _state(small, refund) == before  # refused: nothing changed
    # A reading corrected to 200 kWh makes the bill 474,876: the offset fits.
    billing.reading_correct(actor=clerks[0], reading=small.reading, value=350 + 200, reason="Đọc sai")
    done = client.post(url, {"action": "offset_on_next_bill", "_selected_action": [refund.pk], "_confirmed": "1",
                             "invoice": small.number}, **VI)  # fmt: skip
    assert done.status_code == 302
    small.refresh_from_db()
    refund.refresh_from_db()
    assert (refund.method, refund.offset_invoice, refund.settled_by) == ("offset", small, clerk)
    assert (small.total, small.refund_offset, small.amount_due) == (474_876, 180_900, 293_976)
    # The bill's page, its printed page and the API show the offset, named by the adjustment invoice, and the
    # amount due.
    adjustment_number = refund.adjustment.invoice.number
    change = client.get(reverse("admin:billing_invoice_change", args=[small.pk]), **VI).content.decode()
    printed = client.get(reverse("admin:billing_invoice_print", args=[small.pk]), **VI).content.decode()
    for page in (change, printed):
        assert f"Bù trừ thoái hoàn (điều chỉnh {adjustment_number})" in page
        assert "293.976 ₫" in page and "180.900 ₫" in page
    api = client.get(f"/api/v1/invoices/{small.pk}/").json()
    assert (api["total"], api["refund_offset"], api["amount_due"]) == (474_876, 180_900, 293_976)


def test_an_issued_bills_offset_cannot_change_behind_the_orm(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    nxt = _next_bill(customer, read, 200)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    billing.invoices_issue(actor=None, period=NOV)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_invoice SET refund_offset = 0 WHERE id = %s", [nxt.pk])
    nxt.refresh_from_db()
    assert (nxt.status, nxt.refund_offset) == ("issued", 180_900)


def test_a_rebate_that_brings_a_bill_below_its_offset_releases_the_offset(make_customer, read, clerks):
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    # November 88 kWh: subtotal 177,100, VAT 14,168, total 191,268; offset 180,900.
    nxt = _next_bill(customer, read, 88)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    # A 10% rebate: 177,100 × 10 / 100 = 17,710; VAT after 159,390 × 8 / 100 = 12,751.2 → 12,751: 1,417.
    # Total 159,390 + 12,751 = 172,141 < 180,900: the offset is released, the refund open again.
    billing.rebate_apply(actor=None, programme=_programme("10", period=NOV))
    nxt.refresh_from_db()
    refund.refresh_from_db()
    assert (nxt.subtotal, nxt.vat, nxt.total, nxt.refund_offset) == (159_390, 12_751, 172_141, 0)
    assert (refund.method, refund.offset_invoice, refund.settled_at) == ("", None, None)


def test_the_migration_moves_offset_lines_of_bills_not_yet_issued_to_the_offset_column(
    make_customer, read, clerks
):
    """Migration 0009's own SQL, on a bill that carries an offset the old way (a line of minus the refund,
    taken off the subtotal and total)."""
    migration = importlib.import_module("billing.migrations.0009_invoice_refund_offset")
    customer, refund = _refund_of_180_900(make_customer, read, clerks)
    nxt = _next_bill(customer, read, 200)  # 439,700 + 35,176 = 474,876
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, amount, "
            "vat_percent) VALUES (%s, 99, 'Refund offset (adjustment 7)', %s, NULL, 0, 0, %s, 0)",
            [nxt.pk, nxt.period_start, -refund.amount],
        )
        cursor.execute(
            "UPDATE billing_invoice SET subtotal = subtotal - %s, total = total - %s WHERE id = %s",
            [refund.amount, refund.amount, nxt.pk],
        )
    Refund.objects.filter(pk=refund.pk).update(method="offset", offset_invoice=nxt, settled_at=timezone.now())
    with connection.cursor() as cursor:
        for statement in migration.MOVE_OFFSETS:
            cursor.execute(statement)
    nxt.refresh_from_db()
    assert (nxt.subtotal, nxt.vat, nxt.total, nxt.refund_offset, nxt.amount_due) == (
        439_700,
        35_176,
        474_876,
        180_900,
        293_976,
    )
    assert not nxt.lines.filter(amount__lt=0).exists()


# --- adjustment invoices: the difference by VAT rate -------------------------------------------------------


def _approved(clerks, invoice, **kw) -> Invoice:
    proposer, approver = clerks
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, record="Biên bản", **kw)
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    return adjustment.invoice


def _issued(customer, read, kwh) -> Invoice:
    read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer, period=OCT)


def _by_rate(*invoices: Invoice) -> dict[int, tuple[int, int]]:
    """(amount, kWh) of the lines of ``invoices`` by VAT rate."""
    sums: dict[int, tuple[int, int]] = {}
    for invoice in invoices:
        for amount, kwh, rate in invoice.lines.values_list("amount", "kwh", "vat_percent"):
            before = sums.get(rate, (0, 0))
            sums[rate] = (before[0] + amount, before[1] + kwh)
    return sums


def test_an_adjustment_of_a_mixed_vat_bill_splits_its_difference_by_vat_rate(client, make_customer, read, clerks):
    # given: VAT 10% from 2025-10-16 (October: 15 days at 8%, 16 at 10%); 150 kWh issued: 8% base 156,316
    # (VAT 12,505), 10% base 164,384 (VAT 16,438); 320,700 + 28,943 = 349,643 (see the rebate's test above).
    VatRate.objects.create(valid_from=date(2025, 10, 16), percent=10)
    original = _issued(make_customer(), read, 150)
    assert _by_rate(original) == {8: (156_316, 73), 10: (164_384, 77)}
    # when: corrected to 100 kWh and approved
    adjustment = _approved(clerks, original, kwh=100)
    # then: 100 kWh: kWh 48 + 52; tier widths 24 + 26.  8%: 24 × 1984 + 24 × 2050 = 96,816 (VAT 7,745);
    # 10%: 26 × 1984 + 26 × 2050 = 104,884 (VAT 10,488).  201,700 + 18,233 = 219,933.  By rate: 8%: 96,816 −
    # 156,316 = −59,500 (VAT −4,760) over 48 − 73 = −25 kWh; 10%: 104,884 − 164,384 = −59,500 (VAT −5,950)
    # over 52 − 77 = −25 kWh.  The adjustment: −119,000 − 10,710 = −129,710.
    assert (adjustment.kwh, adjustment.subtotal, adjustment.vat, adjustment.total) == (-50, -119_000, -10_710, -129_710)
    assert _by_rate(adjustment) == {8: (-59_500, -25), 10: (-59_500, -25)}
    assert [(line.segment_start, line.vat_percent) for line in adjustment.lines.order_by("position")] == [
        (OCT, 8), (date(2025, 10, 16), 10),
    ]  # fmt: skip
    assert _by_rate(original, adjustment) == {8: (96_816, 48), 10: (104_884, 52)}
    # A second adjustment (back to 120 kWh) starts from the bill and the first adjustment, rate by rate:
    # 120 kWh: kWh 58 + 62; 8%: 24 × 1984 + 24 × 2050 + 10 × 2380 = 120,616; 10%: 26 × 1984 + 26 × 2050
    # + 10 × 2380 = 128,684.  By rate: 8%: 120,616 − 96,816 = 23,800; 10%: 128,684 − 104,884 = 23,800.
    second = _approved(clerks, original, kwh=120)
    assert _by_rate(second) == {8: (23_800, 10), 10: (23_800, 10)}
    # The print page states each rate's base and VAT, which add up to the invoice's VAT: −4,760 − 5,950 = −10,710.
    client.force_login(clerks[0])
    response = client.get(reverse("admin:billing_invoice_print", args=[adjustment.pk]))
    assert response.context["rates"] == [
        {"percent": 8, "base": -59_500, "vat": -4_760}, {"percent": 10, "base": -59_500, "vat": -5_950},
    ]  # fmt: skip
    assert sum(rate["vat"] for rate in response.context["rates"]) == adjustment.vat
    assert money(-129_710) in response.content.decode()
    # The second one's VAT by rate is the VAT of the bill as it corrects it less the bill's after the first:
    # 8%: VAT(120,616) − VAT(96,816) = 9,649 − 7,745 = 1,904; 10%: VAT(128,684) − VAT(104,884) = 12,868 −
    # 10,488 = 2,380; 1,904 + 2,380 = 4,284 = its VAT (22,517 corrected − 18,233 so far).
    response = client.get(reverse("admin:billing_invoice_print", args=[second.pk]))
    assert response.context["rates"] == [
        {"percent": 8, "base": 23_800, "vat": 1_904}, {"percent": 10, "base": 23_800, "vat": 2_380},
    ]  # fmt: skip
    assert second.vat == 4_284


def _printed_vat_table(html: str) -> list[list[str]]:
    """The rows of the printed page's VAT table (rate, base, VAT), as the customer reads them."""
    table = re.search(r'<table id="invoice-vat">(.*?)</table>', html, re.S).group(1)
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
    return [[re.sub(r"<[^>]+>|\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]  # fmt: skip


def test_the_printed_bill_and_adjustment_of_a_month_with_a_vat_change_state_each_rates_vat(
    client, make_customer, read, clerks
):
    # given: VAT 10% from 2026-11-16 (November: 15 days at 8%, 15 at 10%); 2 households read 300 kWh
    proposer, approver = clerks
    nov26 = date(2026, 11, 1)
    VatRate.objects.create(valid_from=date(2026, 11, 16), percent=10)
    customer = make_customer(households=2)
    read(customer, date(2026, 10, 1), 1000)
    reading = read(customer, nov26, 1300)
    billing.billing_run(actor=None, period=nov26)
    billing.invoices_issue(actor=None, period=nov26)
    bill = Invoice.objects.get(customer=customer, period=nov26)
    client.force_login(proposer)
    # then: 150 kWh in each half; widths ×2 = 100/100/200, halved 50/50/100: 50 × 1984 + 50 × 2050 + 50 × 2380
    # = 320,700 a half.  VAT 8%: 25,656; 10%: 32,070; 25,656 + 32,070 = 57,726 = the bill's VAT.
    response = client.get(reverse("admin:billing_invoice_print", args=[bill.pk]))
    assert _printed_vat_table(response.content.decode()) == [
        ["8%", money(320_700), money(25_656)], ["10%", money(320_700), money(32_070)],
    ]  # fmt: skip
    assert sum(rate["vat"] for rate in response.context["rates"]) == bill.vat == 57_726
    # when: corrected to 250 kWh (125 a half: 50 × 1984 + 50 × 2050 + 25 × 2380 = 261,200) and approved
    billing.reading_correct(actor=proposer, reading=reading, value=1250, reason="Đọc sai")
    billing.adjustment_decide(actor=approver, adjustment=Adjustment.objects.get(original=bill), approve=True)
    adjustment = Invoice.objects.get(adjusts=bill)
    # then: −59,500 at each rate; VAT 8%: 20,896 − 25,656 = −4,760; 10%: 26,120 − 32,070 = −5,950; the
    # adjustment's VAT −10,710
    response = client.get(reverse("admin:billing_invoice_print", args=[adjustment.pk]))
    assert _printed_vat_table(response.content.decode()) == [
        ["8%", money(-59_500), money(-4_760)], ["10%", money(-59_500), money(-5_950)],
    ]  # fmt: skip
    assert sum(rate["vat"] for rate in response.context["rates"]) == adjustment.vat == -10_710


def test_an_adjustment_of_a_bill_with_no_consumption_states_the_vat_it_charges(
    client, make_customer, read, clerks
):
    # given: a stuck meter: October read 0 kWh, the bill has no lines, 0 đồng, paid as issued
    original = _issued(make_customer(), read, 0)
    assert (original.status, original.total, original.lines.count()) == ("paid", 0, 0)
    # when: corrected to 100 kWh and approved
    adjustment = _approved(clerks, original, kwh=100)
    # then: 100 kWh: 50 × 1984 + 50 × 2050 = 99,200 + 102,500 = 201,700; VAT 8% = 16,136; total 217,836,
    # all of it at 8%
    assert (adjustment.subtotal, adjustment.vat, adjustment.total) == (201_700, 16_136, 217_836)
    assert _by_rate(adjustment) == {8: (201_700, 100)}
    client.force_login(clerks[0])
    response = client.get(reverse("admin:billing_invoice_print", args=[adjustment.pk]))
    assert response.context["rates"] == [{"percent": 8, "base": 201_700, "vat": 16_136}]


def test_an_adjustment_whose_charge_changed_since_its_proposal_is_refused_and_changes_nothing(
    make_customer, read, clerks
):
    # given: a round of 10% for October bills up to 200 kWh, run before a 300 kWh bill (outside its range) was
    # issued; an adjustment to 150 kWh proposed, with the round's rebate (311,720 − 798,660 = −486,940)
    proposer, approver = clerks
    programme = RebateProgramme.objects.create(
        name="Đợt 4", legal_basis="NQ", period_from=OCT, period_to=OCT, max_kwh=200
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    billing.rebate_apply(actor=None, programme=programme)
    original = _issued(make_customer(), read, 300)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=150, record="Biên bản")
    assert adjustment.delta_total == -486_940
    # when: the round is taken back before the approval
    billing.rebate_reverse(actor=None, programme=programme)
    invoices = Invoice.objects.count()
    # then: the corrected bill would no longer get the rebate: the approval is refused, to propose it again
    with pytest.raises(ValidationError, match="changed since"):
        billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.invoice, Invoice.objects.count()) == ("proposed", None, invoices)
    assert not Refund.objects.exists()


def test_a_round_run_after_a_bill_was_issued_does_not_reach_it_by_a_correction(make_customer, read, clerks):
    """A round reaches the bills not yet issued when it runs: a bill issued before it never had it, and its
    correction into the round's kWh range does not give it either (as for every other bill issued before)."""
    proposer, approver = clerks
    original = _issued(make_customer(), read, 300)
    programme = RebateProgramme.objects.create(
        name="Đợt 5", legal_basis="NQ", period_from=OCT, period_to=OCT, max_kwh=200
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    billing.rebate_apply(actor=None, programme=programme)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=150, record="Biên bản")
    assert adjustment.delta_total == 346_356 - 798_660  # the corrected charge without the round
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert adjustment.invoice.total == -452_304


# --- a credit on a bill not yet paid: first off what is owed, only the overpaid part goes back ----------------


def _credit_after_payments(make_customer, read, clerks, *, paid: int):
    """October 350 kWh issued (979,560 đồng), ``paid`` of it paid at the counter, then corrected to 300 kWh
    (798,660): the adjustment credits 180,900 (see ``_refund_of_180_900``)."""
    proposer, approver = clerks
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    original = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    if paid:
        billing.payment_record(actor=proposer, invoice=original, amount=paid, paid_at=timezone.now(),
                               source="counter", reference=f"BL-{paid}")  # fmt: skip
    proposed = billing.adjustment_propose(actor=proposer, invoice=original, kwh=300, record="Biên bản 12")
    billing.adjustment_decide(actor=approver, adjustment=proposed, approve=True)
    original.refresh_from_db()
    return customer, original, Refund.objects.get(adjustment=proposed)


def _refund_state(refund: Refund):
    refund.refresh_from_db()
    return refund.amount, refund.method, refund.reference, refund.offset_invoice_id


def test_no_cash_refund_to_a_customer_who_never_paid_the_bill(make_customer, read, clerks):
    _customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=0)
    assert (original.total, original.status, refund.amount) == (979_560, "issued", 180_900)
    # Nothing was paid on the bill: paying 180,900 back hands out money the customer never paid.
    with pytest.raises(ValidationError) as refused:
        billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="CK-REFUND-1")
    assert refused.value.message_dict["reference"] == [
        f"180.900 ₫ is more than the customer overpaid on bill {original.number} (0 ₫: paid 0 ₫ of the 798.660 ₫ "
        "it comes to with its adjustments). A credit first comes off what is still owed on the bill and its "
        "adjustments: only what was overpaid is paid back (or offset the refund on a next bill)."
    ]
    assert _refund_state(refund) == (180_900, "", "", None)
    assert not AuditRecord.objects.filter(action="refund.settle").exists()


def test_paying_the_corrected_amount_settles_a_bill_credited_before_payment(client, make_customer, read, clerks):
    _customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=0)
    # The customer owes the corrected bill, 979,560 − 180,900 = 798,660, and pays exactly that (the API of
    # the banks and collection partners); more is refused with what is owed.
    assert billing.payment_owed(original) == 798_660
    client.force_login(clerks[0])
    form = client.get(reverse("admin:billing_invoice_pay", args=[original.pk])).context["form"]
    assert form.initial["amount"] == 798_660  # the admin's payment form starts with what is owed
    url = f"/api/v1/invoices/{original.pk}/payments/"
    paid_at = timezone.now().isoformat()
    too_much = client.post(url, {"amount": 979_560, "paid_at": paid_at, "source": "bank_transfer",
                                 "reference": "FT-1"}, content_type="application/json")  # fmt: skip
    assert too_much.status_code == 400 and "798.660 ₫" in too_much.content.decode()
    paid = client.post(url, {"amount": 798_660, "paid_at": paid_at, "source": "bank_transfer",
                             "reference": "FT-2"}, content_type="application/json")  # fmt: skip
    assert paid.status_code == 201, paid.content
    original.refresh_from_db()
    assert (original.status, billing.payment_owed(original), billing.overpaid(original)) == ("paid", 0, 0)
    # The refund came off what the bill owed: settled so, nothing to pay back; the bill's own amount due and
    # its page list no offset (its charge and amount due are what was issued).
    assert _refund_state(refund) == (180_900, "offset", "", original.pk)
    assert original.amount_due == 979_560
    page = client.get(reverse("admin:billing_invoice_change", args=[original.pk])).content.decode()
    assert "Refund offset (adjustment" not in page
    refunds = client.get(reverse("admin:billing_refund_changelist")).content.decode()
    assert f"Came off what bill {original.number} still owed" in refunds


def test_a_credit_on_a_partly_paid_bill_pays_back_only_what_was_overpaid(make_customer, read, clerks):
    # 898,660 paid of 979,560; the bill comes to 798,660 after the credit: 100,000 was overpaid.
    _customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=898_660)
    assert (original.status, billing.payment_owed(original), billing.overpaid(original)) == ("paid", 0, 100_000)
    assert _refund_state(refund) == (100_000, "", "", None)  # the other 80,900 came off what was owed
    assert AuditRecord.objects.get(action="refund.reduce").after == {"amount": 100_000}
    billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="UNC-100000")
    assert _refund_state(refund) == (100_000, "refund", "UNC-100000", None)
    assert (billing.payment_owed(original), billing.overpaid(original)) == (0, 0)


def test_a_credit_on_a_bill_paid_in_full_is_paid_back_whole(make_customer, read, clerks):
    _customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=979_560)
    assert (original.status, billing.overpaid(original), refund.amount) == ("paid", 180_900, 180_900)
    billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="UNC-180900")
    assert _refund_state(refund) == (180_900, "refund", "UNC-180900", None)
    assert billing.overpaid(original) == 0


def test_a_credit_paid_exactly_by_earlier_payments_opens_nothing_to_pay_back(make_customer, read, clerks):
    # 798,660 paid before the credit: the bill is paid by it, and the refund came off what it owed.
    _customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=798_660)
    assert original.status == "paid"
    assert _refund_state(refund) == (180_900, "offset", "", original.pk)
    with pytest.raises(ValidationError, match="already settled"):
        billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="UNC-1")


def test_a_credit_offset_on_the_next_bill_is_owed_again_on_the_bill_it_corrects(make_customer, read, clerks):
    customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=0)
    nxt = _next_bill(customer, read, 200)  # 474,876
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    # The credit went to November: October owes its whole amount again, and 798,660 does not settle it.
    assert billing.payment_owed(original) == 979_560
    billing.payment_record(actor=clerks[0], invoice=original, amount=798_660, paid_at=timezone.now(),
                           source="counter", reference="BL-798660")  # fmt: skip
    original.refresh_from_db()
    assert (original.status, billing.payment_owed(original)) == ("issued", 180_900)
    # November recomputed below the offset releases it: the credit comes off October again, which its
    # payment now covers: paid, and the refund came off what it owed (nothing to pay back).
    billing.reading_correct(actor=clerks[0], reading=nxt.reading, value=350 + 80, reason="Đọc sai")
    nxt.refresh_from_db()
    original.refresh_from_db()
    assert (nxt.refund_offset, original.status) == (0, "paid")
    assert _refund_state(refund) == (180_900, "offset", "", original.pk)
    assert (billing.payment_owed(original), billing.overpaid(original)) == (0, 0)


def test_a_released_offset_of_a_bill_paid_in_full_is_paid_back(make_customer, read, clerks):
    customer, original, refund = _credit_after_payments(make_customer, read, clerks, paid=0)
    nxt = _next_bill(customer, read, 200)
    billing.refund_settle(actor=clerks[1], refund=refund, method="offset", offset_invoice=nxt)
    billing.payment_record(actor=clerks[0], invoice=original, amount=979_560, paid_at=timezone.now(),
                           source="counter", reference="BL-979560")  # fmt: skip
    original.refresh_from_db()
    assert original.status == "paid"
    # November recomputed below the offset: October, paid in full, was overpaid by the credit.
    billing.reading_correct(actor=clerks[0], reading=nxt.reading, value=350 + 80, reason="Đọc sai")
    assert _refund_state(refund) == (180_900, "", "", None)
    assert billing.overpaid(original) == 180_900
    billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="UNC-3")
    assert _refund_state(refund) == (180_900, "refund", "UNC-3", None)


def test_a_second_credit_after_the_corrected_amount_was_paid_is_paid_back(make_customer, read, clerks):
    proposer, approver = clerks
    _customer, original, first = _credit_after_payments(make_customer, read, clerks, paid=0)
    billing.payment_record(actor=proposer, invoice=original, amount=798_660, paid_at=timezone.now(),
                           source="counter", reference="BL-798660")  # fmt: skip
    # Corrected again, to 250 kWh (636,768): the customer paid 798,660, so the second credit was overpaid.
    second = billing.adjustment_propose(actor=proposer, invoice=original, kwh=250, record="Biên bản 13")
    billing.adjustment_decide(actor=approver, adjustment=second, approve=True)
    refund = Refund.objects.get(adjustment=second)
    assert (refund.amount, billing.overpaid(original)) == (161_892, 161_892)
    assert _refund_state(first) == (180_900, "offset", "", original.pk)
    billing.refund_settle(actor=approver, refund=refund, method="refund", reference="UNC-161892")
    assert billing.overpaid(original) == 0


# --- a bill and its adjustments are one account: charges and credits of several adjustments ---------------
# Residential, October 2025 (table of 2025-05-10, VAT 8 %): 300 kWh 739,500 + VAT 59,160 = 798,660; 350 kWh
# 907,000 + 72,560 = 979,560; 400 kWh 1,074,500 + 85,960 = 1,160,460: each step of 50 kWh is 180,900.


def _paid_in_full(customer, read, clerk, kwh) -> Invoice:
    original = _issued(customer, read, kwh)
    billing.payment_record(actor=clerk, invoice=original, amount=original.total, paid_at=timezone.now(),
                           source="counter", reference=f"Q-{original.pk}")  # fmt: skip
    return original


def _refused_cash(clerk, refund: Refund, reference: str) -> str:
    """Paying ``refund`` back in cash is refused, and changes nothing: returns the message."""
    before = (_refund_state(refund), AuditRecord.objects.count())
    with pytest.raises(ValidationError) as refused:
        billing.refund_settle(actor=clerk, refund=refund, method="refund", reference=reference)
    assert (_refund_state(refund), AuditRecord.objects.count()) == before
    return " ".join(refused.value.messages)


def test_a_credit_first_cancels_what_an_earlier_charging_adjustment_still_owes(make_customer, read, clerks):
    # Paid 979,560 on 350 kWh; corrected up to 400 (+180,900, not paid), then back to 350 (−180,900).
    original = _paid_in_full(make_customer(), read, clerks[0], 350)
    up = _approved(clerks, original, kwh=400)
    assert (up.total, billing.payment_owed(up), billing.payment_owed(original)) == (180_900, 180_900, 0)
    down = _approved(clerks, original, kwh=350)
    assert down.total == -180_900
    # The bill with its adjustments comes to 979,560, what was paid: the credit took the charge off; nothing
    # is owed and nothing was overpaid.
    refund = Refund.objects.get(adjustment__invoice=down)
    up.refresh_from_db()
    assert (up.status, billing.payment_owed(up), billing.payment_owed(original), billing.overpaid(original)) == (
        "paid", 0, 0, 0,
    )  # fmt: skip
    assert billing.corrected_due(original) == 979_560
    assert _refund_state(refund) == (180_900, "offset", "", original.pk)
    assert AuditRecord.objects.get(action="invoice.paid", object_id=str(up.pk)).reason == (
        f"The credit came off what was still owed on bill {up.number}."
    )
    assert "already settled" in _refused_cash(clerks[0], refund, "CK-1")
    # Nothing is collected on the charge any more.
    with pytest.raises(ValidationError):
        billing.payment_record(actor=clerks[0], invoice=up, amount=180_900, paid_at=timezone.now(),
                               source="counter", reference="Q-up")  # fmt: skip
    assert not up.payments.exists()


def test_a_charge_first_takes_what_an_open_refund_of_the_bill_would_pay_back(make_customer, read, clerks):
    # Paid 1,160,460 on 400 kWh; corrected to 350 (−180,900: may be paid back), then back up to 400.
    original = _paid_in_full(make_customer(), read, clerks[0], 400)
    down = _approved(clerks, original, kwh=350)
    refund = Refund.objects.get(adjustment__invoice=down)
    assert (refund.amount, billing.overpaid(original)) == (180_900, 180_900)
    up = _approved(clerks, original, kwh=400)
    up.refresh_from_db()
    # The open refund covers the new charge: the customer is neither paid back nor asked for it again.
    assert (up.total, up.status, billing.payment_owed(up), billing.overpaid(original)) == (180_900, "paid", 0, 0)
    assert _refund_state(refund) == (180_900, "offset", "", original.pk)
    assert "already settled" in _refused_cash(clerks[0], refund, "CK-2")


def test_a_larger_credit_pays_back_only_what_was_paid_above_the_bill_and_its_charges(
    make_customer, read, clerks
):
    # Paid 979,560 on 350 kWh; up to 400 (+180,900, not paid); down to 300 (−361,800). The bill comes to
    # 979,560 + 180,900 − 361,800 = 798,660: 180,900 was overpaid, the other 180,900 cancels the charge.
    original = _paid_in_full(make_customer(), read, clerks[0], 350)
    up = _approved(clerks, original, kwh=400)
    down = _approved(clerks, original, kwh=300)
    assert down.total == -361_800
    refund = Refund.objects.get(adjustment__invoice=down)
    up.refresh_from_db()
    assert (_refund_state(refund), up.status, billing.payment_owed(up), billing.overpaid(original)) == (
        (180_900, "", "", None), "paid", 0, 180_900,
    )  # fmt: skip
    assert billing.corrected_due(original) == 798_660
    # Two clerks pay it back: the first does, the second is refused and changes nothing.
    billing.refund_settle(actor=clerks[0], refund=refund, method="refund", reference="CK-3")
    assert "already settled" in _refused_cash(clerks[1], refund, "CK-3b")
    assert _refund_state(refund) == (180_900, "refund", "CK-3", None)
    assert (billing.overpaid(original), billing.payment_owed(original)) == (0, 0)


def test_a_credit_on_an_unpaid_bill_and_charge_pays_nothing_back_until_both_are_paid(make_customer, read, clerks):
    # 350 kWh issued, not paid (979,560); up to 400 (+180,900); back to 350 (−180,900): 979,560 in all.
    original = _issued(make_customer(), read, 350)
    up = _approved(clerks, original, kwh=400)
    refund = Refund.objects.get(adjustment__invoice=_approved(clerks, original, kwh=350))
    assert (billing.payment_owed(original), billing.payment_owed(up), billing.overpaid(original)) == (
        798_660, 180_900, 0,
    )  # fmt: skip
    message = _refused_cash(clerks[0], refund, "CK-4")
    assert f"(0 ₫: paid 0 ₫ of the {money(979_560)} it comes to with its adjustments)" in message
    billing.payment_record(actor=clerks[0], invoice=original, amount=798_660, paid_at=timezone.now(),
                           source="counter", reference="Q-bill")  # fmt: skip
    original.refresh_from_db()
    assert (original.status, billing.payment_owed(up), _refund_state(refund)) == (
        "paid", 180_900, (180_900, "", "", None),
    )  # fmt: skip
    billing.payment_record(actor=clerks[0], invoice=up, amount=180_900, paid_at=timezone.now(),
                           source="counter", reference="Q-charge")  # fmt: skip
    up.refresh_from_db()
    assert (up.status, billing.overpaid(original), _refund_state(refund)) == (
        "paid", 0, (180_900, "offset", "", original.pk),
    )  # fmt: skip


def test_paying_back_in_the_admin_a_credit_that_cancelled_a_charge_changes_nothing(client, make_customer, read, clerks):
    original = _paid_in_full(make_customer(), read, clerks[0], 350)
    up = _approved(clerks, original, kwh=400)
    refund = Refund.objects.get(adjustment__invoice=_approved(clerks, original, kwh=350))
    before = _refund_state(refund)
    client.force_login(clerks[1])
    client.post(reverse("admin:billing_refund_changelist"), {
        "action": "settle_by_refund", "_selected_action": [refund.pk], "_confirmed": "1", "reference": "CK-5",
    })  # fmt: skip
    assert _refund_state(refund) == before == (180_900, "offset", "", original.pk)
    assert (billing.payment_owed(up), billing.overpaid(original)) == (0, 0)
