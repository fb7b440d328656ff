"""Demo tickets for the demo customers: live queues, two outage incidents, callbacks, interactions and breaches.

Every change goes through ``tickets.services``. Times: ``ticket_open``, ``ticket_change_status``,
``ticket_record_contact`` and ``incident_restore`` take an explicit moment, so tickets are spread over the last
ten days with their deadlines computed from their own intake time; old tickets left open are therefore past
their deadlines (the SLA sweep of the task cluster, run every minute by ``make run``, marks them breached and
escalates; this command does not run the sweep itself). Work orders, callbacks, notes, assignments and
incident links have no time parameter and are stamped "now".

Deterministic for a seed and the same customers; idempotent: every ticket carries the key ``demo-<i>`` and a
database that already has demo tickets is left alone. Interactions need an agent, so they (and assignments)
are made only when staff exist (``create_demo_users``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from crm.models import Role, StaffProfile, Unit
from customers import demo_names
from customers.models import ContractStatus, Customer
from tickets.models import (
    OPEN_STATUSES,
    Callback,
    Category,
    Channel,
    Disposition,
    Incident,
    Priority,
    ResolutionCode,
    Status,
    Ticket,
    WorkOrder,
    WorkOrderStatus,
)
from tickets.selectors import current_unit
from tickets.services import (
    callback_record,
    catalogue_load_reference,
    incident_open,
    incident_restore,
    interaction_log,
    ticket_add_note,
    ticket_assign,
    ticket_change_status,
    ticket_link_incident,
    ticket_open,
    ticket_record_contact,
    work_order_advance,
    work_order_create,
)

KEY_PREFIX = "demo-"
CUSTOMER_POOL = 3000
DAYS = 10

CHANNEL_WEIGHTS = [
    (Channel.PHONE, 55), (Channel.APP, 12), (Channel.WEBSITE, 9), (Channel.ZALO, 8), (Channel.EMAIL, 5),
    (Channel.SMS, 4), (Channel.CHAT, 4), (Channel.PORTAL, 2), (Channel.ASSISTANT, 1),
]  # fmt: skip
UNKNOWN_CALLER_CHANNELS = [(Channel.PHONE, 80), (Channel.ZALO, 10), (Channel.WEBSITE, 10)]
CATEGORY_WEIGHTS = {
    "outage": 34, "billing": 15, "information": 14, "meter": 8, "new-lv": 6, "contract-change-free": 6,
    "other": 5, "service-complaint": 4, "contract-change-paid": 3, "new-lv-network": 2, "new-mv": 1,
}  # fmt: skip
UNKNOWN_CALLER_CATEGORIES = {"outage": 50, "information": 25, "new-lv": 15, "other": 10}
UNKNOWN_CALLER_SHARE = 0.08
CONTRACT_CATEGORIES = {"billing", "meter", "contract-change-free", "contract-change-paid"}
FIELD_CATEGORIES = {"outage", "meter", "new-lv", "new-lv-network", "new-mv", "contract-change-paid", "other"}
# Calls by hour of the (local) day.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 7, 6, 7, 8, 8, 8, 7, 8, 8, 6, 4, 3, 2]

# Where a ticket ends up, by its age: young tickets are still in the queues, old ones mostly closed.
PLANS_LIVE = {
    "new": 45,
    "acknowledged": 30,
    "in_progress": 10,
    "dispatched": 10,
    "cancelled": 2,
    "resolved": 3,
}
PLANS_DAY = {
    "new": 2, "acknowledged": 8, "dispatched": 10, "in_progress": 14, "pending": 8, "resolved": 28, "closed": 20,
    "cancelled": 5, "reopened": 2,
}  # fmt: skip
PLANS_OLD = {
    "new": 1, "acknowledged": 2, "dispatched": 2, "in_progress": 5, "pending": 8, "resolved": 16, "closed": 110,
    "cancelled": 12, "reopened": 4,
}  # fmt: skip
DUPLICATE_SHARE = 0.04

DESCRIPTIONS = {
    "outage": [
        "Mất điện cả khu vực, nhiều hộ xung quanh cũng mất điện.",
        "Nhà mất điện, hàng xóm vẫn có điện; đã kiểm tra CB trong nhà không nhảy.",
        "Điện chập chờn, đèn nhấp nháy liên tục, sợ hư thiết bị.",
        "Nghe tiếng nổ ở trạm biến áp đầu hẻm rồi mất điện.",
        "Điện yếu, máy lạnh và máy bơm không chạy được.",
        "Mất một pha, một nửa nhà không có điện.",
    ],
    "outage-urgent": [
        "Dây điện bị đứt rơi xuống đường, nguy hiểm cho người đi đường.",
        "Cột điện nghiêng sau mưa bão, dây võng thấp sát mái nhà.",
        "Tủ điện trên vỉa hè bốc khói, có mùi khét.",
    ],
    "billing": [
        "Hóa đơn tháng này tăng gấp đôi so với tháng trước, đề nghị kiểm tra lại chỉ số.",
        "Chỉ số công tơ trên hóa đơn không khớp với chỉ số thực tế trên công tơ.",
        "Đã thanh toán qua ngân hàng nhưng vẫn nhận tin nhắn nhắc nợ tiền điện.",
        "Đề nghị xuất lại hóa đơn điện tử theo đúng tên và mã số thuế công ty.",
        "Nhà đi vắng cả tháng nhưng hóa đơn vẫn tính tiền như bình thường.",
    ],
    "information": [
        "Hỏi lịch tạm ngừng cung cấp điện tuần tới trong khu vực.",
        "Hỏi cách thanh toán tiền điện qua ứng dụng ngân hàng.",
        "Tra cứu số tiền điện và hạn thanh toán tháng này.",
        "Hỏi giá điện sinh hoạt bậc thang hiện hành.",
        "Hỏi thủ tục đăng ký định mức cho người thuê trọ.",
    ],
    "meter": [
        "Công tơ chạy nhanh bất thường, đề nghị kiểm định.",
        "Công tơ bị hỏng màn hình, không đọc được chỉ số.",
        "Đề nghị di dời vị trí công tơ để sửa nhà.",
        "Hộp công tơ bị vỡ nắp, nước mưa vào bên trong.",
    ],
    "new-lv": [
        "Đăng ký cấp điện mới cho nhà mới xây.",
        "Đề nghị lắp đặt công tơ mới cho căn hộ cho thuê.",
        "Đăng ký cấp điện cho ki-ốt kinh doanh trước nhà.",
    ],
    "new-lv-network": ["Đăng ký cấp điện cho nhà xưởng nhỏ, khu vực chưa có lưới hạ áp."],
    "new-mv": ["Đề nghị cấp điện trung áp cho trạm biến áp 560 kVA của công ty."],
    "contract-change-free": [
        "Đổi tên chủ hợp đồng do mua bán nhà.",
        "Cập nhật số điện thoại và email nhận thông báo tiền điện.",
        "Đăng ký thêm định mức cho hộ gia đình có thêm người.",
    ],
    "contract-change-paid": [
        "Đề nghị tăng công suất, chuyển từ 1 pha sang 3 pha.",
        "Đổi mục đích sử dụng điện sang kinh doanh.",
    ],
    "service-complaint": [
        "Nhân viên ghi chỉ số không đến đúng lịch.",
        "Gọi tổng đài nhiều lần không gặp được điện thoại viên.",
        "Nhân viên xử lý sự cố đến trễ so với hẹn.",
    ],
    "other": [
        "Cây xanh va chạm đường dây trước nhà, đề nghị cắt tỉa.",
        "Đề nghị cung cấp bản sao hợp đồng mua bán điện.",
        "Đề nghị kiểm tra an toàn hệ thống điện trước khi cho thuê nhà.",
    ],
}
RESOLUTIONS = {
    "outage": ["Đã khắc phục sự cố, cấp điện trở lại.", "Thay dây chì, đóng điện lại cho khách hàng."],
    "billing": [
        "Đã kiểm tra, chỉ số đúng; đã giải thích cho khách hàng.",
        "Ghi sai chỉ số, đã điều chỉnh hóa đơn.",
    ],
    "information": ["Đã cung cấp thông tin cho khách hàng."],
    "meter": ["Đã kiểm định, công tơ đạt yêu cầu.", "Đã thay công tơ mới."],
}
RESOLUTION_DEFAULT = [
    "Đã giải quyết xong yêu cầu của khách hàng.",
    "Đã hoàn tất hồ sơ, thông báo khách hàng.",
]
CANCEL_NOTES = [
    "Khách hàng tự hủy yêu cầu.",
    "Khách hàng gọi nhầm, đã có điện trở lại.",
    "Trùng yêu cầu tại quầy.",
]
PENDING_NOTES = [
    "Chờ khách hàng bổ sung hồ sơ.",
    "Khách hàng hẹn lịch kiểm tra.",
    "Chờ khách hàng xác nhận chỉ số.",
]
REOPEN_NOTES = ["Khách hàng báo sự cố tái diễn.", "Khách hàng chưa đồng ý với kết quả giải quyết."]
INTERNAL_NOTES = [
    "Đã chuyển tổ quản lý vận hành kiểm tra.",
    "Khách hàng hẹn làm việc sau 17 giờ.",
    "Đã đối chiếu chỉ số với dữ liệu đo xa, chênh lệch nhỏ.",
    "Cần kiểm tra lại hồ sơ gốc tại phòng giao dịch.",
]
CUSTOMER_MESSAGES = [
    "Điện lực đã tiếp nhận yêu cầu của quý khách và sẽ liên hệ trong thời gian sớm nhất.",
    "Nhân viên Điện lực sẽ đến kiểm tra trong vòng 2 giờ. Xin cảm ơn quý khách.",
    "Đề nghị quý khách bổ sung bản sao giấy tờ nhà để hoàn tất hồ sơ.",
]
CALLBACK_COMMENTS = {
    5: "Hài lòng, xử lý nhanh.",
    4: "Nhân viên nhiệt tình.",
    3: "Xử lý hơi lâu.",
    2: "Phải gọi nhiều lần.",
    1: "Chờ quá lâu mới có điện.",
}


@dataclass
class Spec:
    """One demo ticket, decided before anything is written."""

    i: int
    at: dt.datetime
    category: str
    channel: str
    priority: str
    description: str
    plan: str
    customer: Customer | None = None
    unit: Unit | None = None  # for an unknown caller
    caller_name: str = ""
    caller_phone: str = ""
    caller_address: str = ""
    incident: str = ""  # "restored" or "open"
    link_later: bool = False
    duplicate_of: int | None = None


def _pick(rng: random.Random, weights: dict | list):
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    return rng.choices([k for k, _w in items], weights=[w for _k, w in items])[0]


def _reachable(customer: Customer | None, caller_phone: str) -> bool:
    if customer is None:
        return bool(caller_phone)
    return any(p.is_primary for p in customer.phones.all()) or bool(customer.email)


class Command(BaseCommand):
    help = (
        "Load demo tickets for the demo customers (queues, outage incidents, callbacks, interactions, "
        "breaches). Deterministic for a seed; does nothing when demo tickets already exist."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tickets", type=int, default=300)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, tickets, seed, **options):
        if tickets < 0:
            raise CommandError("--tickets must not be negative")
        if Ticket.objects.filter(intake_key__key__startswith=KEY_PREFIX).exists():
            self.stdout.write("Demo tickets already loaded: nothing to do.")
            return
        customers = list(
            Customer.objects.order_by("id")
            .select_related("unit")
            .prefetch_related("phones", "contracts")[:CUSTOMER_POOL]
        )
        if not customers:
            self.stdout.write("No customers: run manage.py seed_demo first. No demo tickets created.")
            return
        if not Category.objects.exists():
            catalogue_load_reference()
        self.categories = {c.code: c for c in Category.objects.filter(is_active=True)}
        if not self.categories:
            self.stdout.write("No active request category: no demo tickets created.")
            return
        started = time.monotonic()
        self.now = timezone.now()
        self.rng = random.Random(seed)
        self.seed = seed
        self.counts = Counter()
        self.skipped = Counter()
        self.problems = Counter()
        self._load_staff()
        with _quiet("django-q"), transaction.atomic():  # quiet: one "Enqueued" line per message after commit
            specs = self._plan(customers, tickets)
            incidents = self._open_incidents()
            created: dict[int, Ticket] = {}
            restored = False
            for spec in specs:
                if not restored and spec.at >= self.restored_at:
                    # Power comes back at its moment of the timeline: calls after it are not linked to it.
                    self._restore(incidents, specs, created)
                    restored = True
                try:
                    with transaction.atomic():
                        ticket, counts = self._play(spec, created, incidents)
                except ValidationError as exc:
                    self.skipped[self._reason(exc)] += 1
                    continue
                created[spec.i] = ticket
                self.counts.update(counts)
            if not restored:
                self._restore(incidents, specs, created)
            self._field_work(incidents)
        self._report(created, incidents, time.monotonic() - started)

    # Planning ---------------------------------------------------------------------------------------------

    def _plan(self, customers: list[Customer], total: int) -> list[Spec]:
        rng, now = self.rng, self.now
        by_unit: dict[int, list[Customer]] = {}
        for customer in customers:
            by_unit.setdefault(customer.unit_id, []).append(customer)
        # The outages happen where the demo's crews and dispatchers work (the unit of theirs with the most
        # customers), so their field page and their agents' customer cards show them; else the busiest unit.
        crewed = [u for u in by_unit if self._staff(u, Role.FIELD_CREW, Role.DISPATCHER)]
        busiest = max(crewed or by_unit, key=lambda u: (len(by_unit[u]), -u))
        self.incident_unit = current_unit(by_unit[busiest][0].unit)
        wards = Counter(c.ward for c in by_unit[busiest])
        self.open_wards = sorted(w for w, _n in wards.most_common(2))
        per_incident = self.per_incident = min(10, total // 10) if self._outage_code() else 0
        self.restored_start = now - dt.timedelta(days=3, hours=2, minutes=rng.randint(0, 59))
        self.restored_at = self.restored_start + dt.timedelta(hours=3, minutes=10)
        self.open_start = now - dt.timedelta(minutes=75)
        regular = total - 2 * per_incident
        live = max(1, regular // 12) if regular else 0
        moments = [(now - dt.timedelta(minutes=rng.uniform(1, 90)), "") for _k in range(live)]
        moments += [(self._past_moment(), "") for _k in range(regular - live)]
        moments += [
            (self.restored_start + dt.timedelta(minutes=rng.uniform(5, 150)), "restored")
            for _k in range(per_incident)
        ]
        moments += [
            (self.open_start + dt.timedelta(minutes=rng.uniform(3, 70)), "open") for _k in range(per_incident)
        ]
        moments.sort(key=lambda m: m[0])
        in_open_wards = [c for c in by_unit[busiest] if c.ward in self.open_wards] or by_unit[busiest]
        specs: list[Spec] = []
        for i, (at, incident) in enumerate(moments):
            if incident:
                pool = by_unit[busiest] if incident == "restored" else in_open_wards
                spec = self._spec(i, at, customer=rng.choice(pool), category=self._outage_code())
                spec.incident = incident
                spec.channel = _pick(rng, [(Channel.PHONE, 85), (Channel.APP, 10), (Channel.ZALO, 5)])
                if incident == "restored":
                    spec.plan = "acknowledged" if rng.random() < 0.8 else "new"
                else:
                    spec.plan = _pick(rng, {"new": 40, "acknowledged": 40, "in_progress": 20})
                    spec.link_later = rng.random() < 0.2
            elif specs and rng.random() < DUPLICATE_SHARE:
                earlier = [s for s in specs[-40:] if s.customer is not None and not s.incident]
                if not earlier:
                    spec = self._regular(i, at, customers)
                else:
                    first = rng.choice(earlier)
                    spec = self._spec(i, at, customer=first.customer, category=first.category)
                    spec.description = f"Gọi lại lần nữa: {first.description}"
                    spec.plan, spec.duplicate_of = "duplicate", first.i
            else:
                spec = self._regular(i, at, customers)
            specs.append(spec)
        return specs

    def _outage_code(self) -> str:
        if "outage" in self.categories:
            return "outage"
        return next((code for code, c in sorted(self.categories.items()) if c.is_outage), "")

    def _past_moment(self) -> dt.datetime:
        rng, now = self.rng, self.now
        today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        for _attempt in range(6):
            day = today - dt.timedelta(days=rng.randrange(DAYS))
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            at = day + dt.timedelta(hours=hour, minutes=rng.uniform(0, 60))
            if at < now - dt.timedelta(minutes=2):
                return at
        return now - dt.timedelta(minutes=rng.uniform(2, 600))

    def _spec(self, i: int, at: dt.datetime, *, customer: Customer | None, category: str) -> Spec:
        rng = self.rng
        urgent = category == "outage" and rng.random() < 0.05
        if urgent:
            priority = Priority.URGENT
        elif rng.random() < (0.25 if category == "outage" else 0.08):
            priority = Priority.HIGH
        else:
            priority = Priority.NORMAL
        texts = DESCRIPTIONS.get("outage-urgent" if urgent else category) or ["Yêu cầu hỗ trợ."]
        return Spec(
            i=i,
            at=at,
            category=category,
            channel=_pick(rng, CHANNEL_WEIGHTS),
            priority=priority,
            description=rng.choice(texts),
            plan="new",
            customer=customer,
        )

    def _regular(self, i: int, at: dt.datetime, customers: list[Customer]) -> Spec:
        rng = self.rng
        someone = rng.choice(customers)
        unknown = rng.random() < UNKNOWN_CALLER_SHARE
        weights = UNKNOWN_CALLER_CATEGORIES if unknown else CATEGORY_WEIGHTS
        available = {c: w for c, w in weights.items() if c in self.categories}
        available = available or dict.fromkeys(sorted(self.categories), 1)
        category = _pick(rng, available)
        spec = self._spec(i, at, customer=None if unknown else someone, category=category)
        if unknown:
            spec.channel = _pick(rng, UNKNOWN_CALLER_CHANNELS)
            spec.unit = someone.unit
            spec.caller_name = self._person_name()
            spec.caller_phone = f"09{rng.randint(0, 9)}{rng.randint(0, 9_999_999):07d}"
            street = someone.street.split(" ", 1)[-1]
            spec.caller_address = f"{rng.randint(1, 250)} {street}, {someone.ward}, {someone.district}"
        age = (self.now - at).total_seconds() / 60
        plans = PLANS_LIVE if age < 60 else PLANS_DAY if age < 24 * 60 else PLANS_OLD
        spec.plan = _pick(rng, plans)
        if spec.plan == "dispatched" and category not in FIELD_CATEGORIES:
            spec.plan = "in_progress"
        return spec

    def _person_name(self) -> str:
        rng = self.rng
        family = rng.choices(
            [n for n, _s in demo_names.FAMILY_NAMES], weights=[s for _n, s in demo_names.FAMILY_NAMES]
        )[0]
        if rng.random() < 0.5:
            middle, given = demo_names.MIDDLE_NAMES_MALE, demo_names.GIVEN_NAMES_MALE
        else:
            middle, given = demo_names.MIDDLE_NAMES_FEMALE, demo_names.GIVEN_NAMES_FEMALE
        return f"{family} {rng.choice(middle)} {rng.choice(given)}"

    # Staff ------------------------------------------------------------------------------------------------

    def _load_staff(self) -> None:
        """Who plays the agents, dispatchers and crews: the existing staff, if any."""
        self.staff_by_unit: dict[int, dict[str, list]] = {}
        self.agent, self._agent_role = None, None
        profiles = StaffProfile.objects.select_related("user").prefetch_related("units").order_by("id")
        for profile in profiles:
            if not profile.user.is_active:
                continue
            if self.agent is None or (profile.role == Role.AGENT and self._agent_role != Role.AGENT):
                self.agent, self._agent_role = profile.user, profile.role
            for unit in profile.units.all():
                self.staff_by_unit.setdefault(unit.pk, {}).setdefault(profile.role, []).append(profile.user)

    def _staff(self, unit_id: int, *roles: str) -> list:
        served = self.staff_by_unit.get(unit_id, {})
        return [user for role in roles for user in served.get(role, [])]

    def _handler(self, unit_id: int):
        """The unit's own dispatcher, supervisor or agent; the system itself (None) where nobody serves it:
        staff act only on the units they serve."""
        people = self._staff(unit_id, Role.DISPATCHER, Role.SUPERVISOR, Role.AGENT)
        return people[0] if people else None

    def _caller(self, unit_id: int):
        """The agent who calls the customer back: one of the unit's own, else the system itself (None)."""
        agents = self._staff(unit_id, Role.AGENT)
        return agents[0] if agents else None

    # Playing one ticket -----------------------------------------------------------------------------------

    def _play(self, spec: Spec, created: dict[int, Ticket], incidents: dict[str, Incident]):
        rng = random.Random(self.seed * 1_000_003 + spec.i)
        counts: Counter[str] = Counter()
        incident = incidents.get(spec.incident)
        intake = self._open(spec, incident)
        ticket = intake.ticket
        if not intake.created:
            return ticket, counts
        counts["tickets"] += 1
        handler = self._handler(ticket.unit_id)
        if spec.channel == Channel.PHONE:
            counts["interactions"] += self._log_call(spec, ticket, rng)
        if incident is not None and spec.link_later:
            ticket_link_incident(actor=handler, ticket=ticket, incident=incident)
        clock = _Clock(spec.at, self.now, rng)
        plan = spec.plan
        if plan == "duplicate":
            first = created.get(spec.duplicate_of) if spec.duplicate_of is not None else None
            if first is not None:
                ticket_change_status(
                    actor=handler, ticket=ticket, to=Status.DUPLICATE, duplicate_of=first,
                    note=f"Trùng với phiếu {first.number}", at=clock.after(1, 5),
                )  # fmt: skip
                return ticket, counts
            plan = "acknowledged"
        if plan == "cancelled" and rng.random() < 0.5:
            ticket_change_status(
                actor=handler, ticket=ticket, to=Status.CANCELLED, note=rng.choice(CANCEL_NOTES), at=clock.after(1, 30)
            )  # fmt: skip
            return ticket, counts
        if plan != "new":
            ticket = self._first_moves(spec, ticket, plan, handler, clock, rng, counts)
        self._later_moves(spec, ticket, plan, handler, clock, rng, counts)
        self._notes(spec, ticket, plan, handler, rng, counts)
        return ticket, counts

    def _open(self, spec: Spec, incident: Incident | None):
        """The request as the agent took it (with its contract when the category concerns one)."""
        contract = None
        if spec.customer is not None and spec.category in CONTRACT_CATEGORIES:
            contract = next(
                (c for c in spec.customer.contracts.all() if c.status == ContractStatus.ACTIVE), None
            )
        return ticket_open(
            actor=self.agent,
            category=self.categories[spec.category],
            channel=spec.channel,
            description=spec.description,
            customer=spec.customer,
            contract=contract,
            caller_name=spec.caller_name,
            caller_phone=spec.caller_phone,
            caller_address=spec.caller_address,
            unit=spec.unit,
            priority=spec.priority,
            idempotency_key=f"{KEY_PREFIX}{spec.i}",
            incident=None if spec.link_later else incident,
            at=spec.at,
        )

    def _first_moves(self, spec: Spec, ticket: Ticket, plan: str, handler, clock, rng, counts) -> Ticket:
        """Acknowledged (now and then late), often assigned, and the customer called back within minutes."""
        late = rng.random() < 0.1
        ticket = ticket_change_status(
            actor=handler, ticket=ticket, to=Status.ACKNOWLEDGED, at=clock.after(*((4, 20) if late else (0.5, 2.8)))
        )  # fmt: skip
        assignees = self._staff(ticket.unit_id, Role.AGENT, Role.DISPATCHER, Role.FIELD_CREW, Role.SUPERVISOR)
        if assignees and rng.random() < 0.7:
            assignee = rng.choice(assignees)
            ticket = ticket_assign(actor=assignee, ticket=ticket, assignee=assignee)
            counts["assigned"] += 1
        young = (self.now - spec.at) < dt.timedelta(hours=1)
        if not (plan == "dispatched" and young) and rng.random() < 0.9:
            ticket = ticket_record_contact(actor=handler, ticket=ticket, at=clock.after(0.3, 1.2))
        return ticket

    def _later_moves(self, spec: Spec, ticket: Ticket, plan: str, handler, clock, rng, counts) -> None:
        """Where the plan takes the ticket: a crew, in progress, waiting for the customer, resolved…"""
        if plan == "dispatched":
            counts["work_orders"] += self._dispatch(ticket, handler, rng, steps=rng.randint(0, 2))
        elif plan == "in_progress":
            ticket_change_status(actor=handler, ticket=ticket, to=Status.IN_PROGRESS, at=clock.after(5, 90))
        elif plan == "pending":
            if rng.random() < 0.5:
                ticket_change_status(
                    actor=handler, ticket=ticket, to=Status.IN_PROGRESS, at=clock.after(5, 90)
                )
            ticket_change_status(
                actor=handler, ticket=ticket, to=Status.PENDING_CUSTOMER, note=rng.choice(PENDING_NOTES),
                at=clock.after(10, 240),
            )  # fmt: skip
        elif plan == "cancelled":
            ticket_change_status(
                actor=handler, ticket=ticket, to=Status.CANCELLED, note=rng.choice(CANCEL_NOTES), at=clock.after(5, 120)
            )  # fmt: skip
        elif plan in ("resolved", "closed", "reopened"):
            self._resolve(spec, ticket, handler, clock, rng, counts)
            if plan == "reopened":
                ticket_change_status(
                    actor=handler, ticket=ticket, to=Status.REOPENED, note=rng.choice(REOPEN_NOTES),
                    at=clock.after(60, 600),
                )  # fmt: skip
                ticket_change_status(
                    actor=handler, ticket=ticket, to=Status.IN_PROGRESS, at=clock.after(5, 60)
                )
            elif plan == "closed":
                counts["callbacks"] += self._callback(ticket, rng, reached=rng.random() < 0.8)
            elif rng.random() < 0.25:
                callback_record(
                    actor=self._caller(ticket.unit_id), ticket=ticket, reached=False
                )  # first unanswered attempt
                counts["callbacks"] += 1

    def _notes(self, spec: Spec, ticket: Ticket, plan: str, handler, rng, counts) -> None:
        """An internal note now and then; a message to a reachable customer (always when waiting for them)."""
        if rng.random() < 0.12:
            ticket_add_note(actor=handler, ticket=ticket, body=rng.choice(INTERNAL_NOTES))
            counts["notes"] += 1
        if (plan == "pending" or rng.random() < 0.06) and _reachable(spec.customer, spec.caller_phone):
            ticket_add_note(
                actor=handler, ticket=ticket, body=rng.choice(CUSTOMER_MESSAGES), to_customer=True
            )
            counts["messages"] += 1

    def _log_call(self, spec: Spec, ticket: Ticket, rng: random.Random) -> int:
        agents = self._staff(ticket.unit_id, Role.AGENT) or ([self.agent] if self.agent else [])
        if not agents:
            return 0  # an interaction needs an agent: none without staff
        handling = dt.timedelta(minutes=rng.uniform(1, 8))
        started = spec.at - handling * rng.uniform(0.3, 0.7)
        ended = started + handling
        if ended > self.now:
            started, ended = started - (ended - self.now), self.now
        phone = spec.caller_phone
        if spec.customer is not None:
            phone = next((p.number for p in spec.customer.phones.all() if p.is_primary), "")
        interaction_log(
            actor=rng.choice(agents), channel=Channel.PHONE, started_at=started, ended_at=ended,
            disposition=Disposition.TICKET, unit=ticket.unit, customer=spec.customer, ticket=ticket,
            caller_phone=phone,
        )  # fmt: skip
        return 1

    def _dispatch(
        self, ticket: Ticket, handler, rng: random.Random, *, steps: int, done: bool = False
    ) -> int:
        crews = self._staff(ticket.unit_id, Role.FIELD_CREW)
        order = work_order_create(
            actor=handler,
            ticket=ticket,
            crew=rng.choice(crews) if crews else None,
            note="Kiểm tra tại hiện trường",
        )
        path = [WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED, WorkOrderStatus.ON_SITE]
        for step in path[:steps]:
            order = work_order_advance(actor=handler, order=order, to=step)
        if done:
            work_order_advance(
                actor=handler, order=order, to=WorkOrderStatus.DONE, resolution_code=ResolutionCode.FIXED
            )
        return 1

    def _resolve(self, spec, ticket, handler, clock, rng, counts) -> None:
        young = (self.now - spec.at) < dt.timedelta(hours=12)
        if spec.plan != "reopened" and spec.category in FIELD_CATEGORIES and young and rng.random() < 0.5:
            counts["work_orders"] += self._dispatch(ticket, handler, rng, steps=3, done=True)
            return  # the crew's "done" resolves the ticket (now)
        if rng.random() < 0.6:
            ticket_change_status(actor=handler, ticket=ticket, to=Status.IN_PROGRESS, at=clock.after(2, 30))
        if spec.category == "outage":
            minutes = (120, 300) if rng.random() < 0.15 else (15, 100)
        elif ticket.policy.resolve_minutes is not None:
            minutes = (20, 20 * 60)
        else:
            minutes = (3 * 60, 5 * 24 * 60)
        note = rng.choice(RESOLUTIONS.get(spec.category, RESOLUTION_DEFAULT))
        ticket_change_status(
            actor=handler, ticket=ticket, to=Status.RESOLVED, note=note, at=clock.after(*minutes)
        )

    def _callback(self, ticket: Ticket, rng: random.Random, *, reached: bool) -> int:
        """A finished callback (which closes the ticket): the survey, or three unanswered calls."""
        if reached:
            fix = rng.choices([1, 2, 3, 4, 5], weights=[3, 4, 10, 35, 48])[0]
            attitude = min(5, max(1, fix + rng.choice([-1, 0, 0, 1])))
            callback_record(
                actor=self._caller(ticket.unit_id), ticket=ticket, reached=True, fix_score=fix, attitude_score=attitude,
                comment=CALLBACK_COMMENTS[fix],
            )  # fmt: skip
        else:
            for _attempt in range(3):
                callback_record(actor=self._caller(ticket.unit_id), ticket=ticket, reached=False)
        return 1

    def _field_work(self, incidents: dict[str, Incident]) -> None:
        """Every demo crew member has work on their page: a crew with no open work order is sent to up to three
        open field tickets of their units (the ongoing outage's first), the first one acknowledged."""
        crews = {
            user.pk: user
            for served in self.staff_by_unit.values()
            for user in served.get(Role.FIELD_CREW, [])
        }
        outage = incidents.get("open")
        for crew in crews.values():
            if WorkOrder.objects.open().filter(crew=crew).exists():
                continue
            units = [
                unit_id
                for unit_id, served in self.staff_by_unit.items()
                if crew in served.get(Role.FIELD_CREW, [])
            ]
            candidates = (
                Ticket.objects.open()
                .filter(unit__in=units, category__code__in=FIELD_CATEGORIES, work_orders__isnull=True)
                .exclude(status=Status.PENDING_CUSTOMER)
                .order_by("-id")
            )
            if outage is not None:
                linked = list(candidates.filter(incident=outage)[:3])
                tickets = linked + list(candidates.exclude(incident=outage)[: 3 - len(linked)])
            else:
                tickets = list(candidates[:3])
            for k, ticket in enumerate(tickets):
                try:
                    with transaction.atomic():
                        order = work_order_create(
                            actor=self._handler(ticket.unit_id), ticket=ticket, crew=crew,
                            note="Kiểm tra tại hiện trường",
                        )  # fmt: skip
                        if k == 0:
                            work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
                except ValidationError as exc:
                    self.problems[f"work order: {self._reason(exc)}"] += 1
                    continue
                self.counts["work_orders"] += 1

    # Incidents --------------------------------------------------------------------------------------------

    def _open_incidents(self) -> dict[str, Incident]:
        if not self.per_incident:
            return {}
        unit = self.incident_unit
        handler = self._handler(unit.pk)
        incidents = {}
        try:
            with transaction.atomic():
                incidents["restored"] = incident_open(
                    actor=handler, unit=unit, cause="Sự cố đường dây trung thế, nhánh rẽ bị phóng điện",
                    started_at=self.restored_start, estimated_restore_at=self.restored_start + dt.timedelta(hours=2),
                    feeder_code=f"471-{unit.code}",
                )  # fmt: skip
                incidents["open"] = incident_open(
                    actor=handler, unit=unit, cause="Sự cố máy biến áp phân phối, đang khắc phục",
                    started_at=self.open_start, wards=self.open_wards,
                    estimated_restore_at=self.now + dt.timedelta(minutes=50), transformer_code=f"T-{unit.code}-07",
                )  # fmt: skip
        except ValidationError as exc:
            self.problems[f"incidents: {self._reason(exc)}"] += 1
            return {}
        return incidents

    def _restore(self, incidents: dict[str, Incident], specs: list[Spec], created: dict[int, Ticket]) -> None:
        """Power comes back for the older incident: its tickets resolve in bulk; half of them get a callback."""
        incident = incidents.get("restored")
        if incident is None:
            return
        restored_at = self.restored_at
        try:
            with transaction.atomic():
                result = incident_restore(
                    actor=self._handler(incident.unit_id), incident=incident, at=restored_at,
                    note="Đã khắc phục sự cố, đóng điện trở lại toàn tuyến.",
                )  # fmt: skip
        except ValidationError as exc:
            self.problems[f"restore: {self._reason(exc)}"] += 1
            return
        self.counts["restored_tickets"] += result["resolved"]
        for spec in specs:
            ticket = created.get(spec.i)
            if spec.incident != "restored" or ticket is None:
                continue
            rng = random.Random(self.seed * 1_000_003 + spec.i + 500_000)
            if rng.random() >= 0.5:
                continue
            try:
                with transaction.atomic():
                    self.counts["callbacks"] += self._callback(ticket, rng, reached=rng.random() < 0.85)
            except ValidationError as exc:
                self.problems[f"callback: {self._reason(exc)}"] += 1

    # Report -----------------------------------------------------------------------------------------------

    @staticmethod
    def _reason(exc: ValidationError) -> str:
        return "; ".join(exc.messages)[:120]

    def _report(self, created: dict[int, Ticket], incidents: dict[str, Incident], elapsed: float) -> None:
        demo = Ticket.objects.filter(intake_key__key__startswith=KEY_PREFIX)
        by_status = dict(demo.values_list("status").annotate(n=Count("id")).order_by())
        statuses = ", ".join(f"{by_status[s]} {s}" for s in Status.values if by_status.get(s))
        now = timezone.now()
        open_count = demo.filter(status__in=OPEN_STATUSES).count()
        running = [s for s in OPEN_STATUSES if s != Status.PENDING_CUSTOMER]  # pending: the clock waits
        overdue = demo.filter(status__in=running, resolve_due__lt=now).count()
        linked = demo.filter(incident__in=list(incidents.values())).count()
        restored = Incident.objects.filter(
            pk__in=[i.pk for i in incidents.values()], restored_at__isnull=False
        ).count()
        callbacks = Callback.objects.filter(ticket__in=demo).count()
        c = self.counts
        no_staff = "" if self.agent else " (no staff yet: no interactions or assignments)"
        where = f" in {self.incident_unit.code}" if incidents else ""
        self.stdout.write(
            f"Created {c['tickets']} demo tickets in {elapsed:.1f}s ({statuses}; {open_count} open, "
            f"{overdue} overdue); {len(incidents)} outage incidents{where} ({restored} restored, "
            f"{linked} tickets linked); {callbacks} callbacks, {c['interactions']} phone interactions, "
            f"{c['work_orders']} work orders, {c['assigned']} assignments, {c['notes']} notes, "
            f"{c['messages']} messages{no_staff}; {sum(self.skipped.values())} skipped."
        )
        for reason, n in self.skipped.most_common(5):
            self.stdout.write(f"  skipped {n}: {reason}")
        for problem, n in self.problems.most_common(5):
            self.stdout.write(f"  not done {n}: {problem}")


@contextlib.contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        logger.setLevel(level)


class _Clock:
    """The moment of a ticket's next step: moves forward by a random number of minutes, never past now."""

    def __init__(self, start: dt.datetime, now: dt.datetime, rng: random.Random):
        self.t, self.now, self.rng = start, now, rng

    def after(self, low: float, high: float) -> dt.datetime:
        self.t = min(self.t + dt.timedelta(minutes=self.rng.uniform(low, high)), self.now)
        return self.t
