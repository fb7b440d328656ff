"""One demo user per role, for trying the product; passwords are generated once and kept in var/."""

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from crm import two_factor
from crm.models import Company, Role, Unit
from crm.services import staff_create

# (username, role, badge, how to pick the units they serve: the company's units, or its unit with the most
# customers, where the demo's outages and field work then happen: manage.py seed_demo_tickets)
DEMO_STAFF = [
    ("agent", Role.AGENT, "22", "company"),
    ("supervisor", Role.SUPERVISOR, "S01", "busiest_unit"),
    ("dispatcher", Role.DISPATCHER, "D01", "busiest_unit"),
    ("crew", Role.FIELD_CREW, "F01", "busiest_unit"),
    ("billing", Role.BILLING_CLERK, "B01", "company"),
    ("manager", Role.MANAGER, "M01", "busiest_unit"),
    ("admin", Role.ADMINISTRATOR, "A01", "none"),
]


class Command(BaseCommand):
    help = "Create the demo users (one per role) and print their credentials. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--company", default=None, help="Company whose units the demo staff serve.")

    def handle(self, *args, company=None, **options):
        store = Path(settings.BASE_DIR) / "var" / "demo-credentials.json"
        store.parent.mkdir(exist_ok=True)
        known = json.loads(store.read_text()) if store.exists() else {}
        home = self._home_company(company)
        units = list(home.units.active().order_by("code"))
        if not units:
            raise CommandError(f"Company {home.code} has no active unit.")
        busiest = (
            home.units.active().annotate(n=Count("customers")).order_by("-n", "code").first()
        )  # never None: the company has active units
        user_model = get_user_model()
        rows = []
        for username, role, badge, pick in DEMO_STAFF:
            served = {"company": units, "busiest_unit": [busiest], "none": []}[pick]
            user = user_model.objects.filter(username=username).first()
            if user is None:
                password = known.get(username) or secrets.token_urlsafe(9)
                staff_create(
                    actor=None,
                    username=username,
                    password=password,
                    role=role,
                    badge_number=badge,
                    units=served,
                    first_name="Demo",
                    last_name=str(role.label),
                )
                known[username] = password
                state = "created"
            else:
                password = known.get(username, "(unchanged; not created by this command)")
                if username in known and not user.check_password(known[username]):
                    password = "(changed since it was created)"
                state = "exists"
            rows.append(
                (username, str(role.label), ", ".join(u.code for u in served) or "all", password, state)
            )
        store.write_text(json.dumps(known, indent=2))
        store.chmod(0o600)
        self.stdout.write(
            f"\nDemo users (log in at /admin/; credentials kept in {store.relative_to(settings.BASE_DIR)}):"
        )
        self.stdout.write(f"  {'username':<11} {'role':<26} {'units':<28} password")
        for username, label, served, password, _state in rows:
            self.stdout.write(f"  {username:<11} {label:<26} {served[:28]:<28} {password}")
        self.stdout.write("")
        administrator = user_model.objects.get(username="admin")
        if two_factor.needs_second_factor(administrator):
            device = two_factor.totp_enroll(actor=None, user=administrator)
            self.stdout.write(
                "The administrator signs in with a code from an authenticator app as well: add this secret to "
                "one (or scan the code below), then type the six digits it shows on the login page.\n"
                + two_factor.provisioning_text(device)
            )

    def _home_company(self, code):
        if code:
            found = Company.objects.filter(code=code).first()
            if found is None:
                raise CommandError(f"No company {code}")
            return found
        # EVNHCMC's first company when it has customers, else the company with the most, so the demo users see data.
        first = Company.objects.filter(code="PE01", units__customers__isnull=False).first()
        if first is not None:
            return first
        busiest = (
            Unit.objects.values("company_id")
            .annotate(n=Count("customers"))
            .order_by("-n", "company__code")
            .first()
        )
        if busiest is None:
            raise CommandError("No organisation loaded: run manage.py load_organisation first.")
        return Company.objects.get(pk=busiest["company_id"])
