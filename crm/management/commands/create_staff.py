import getpass
import os

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.models import Role, Unit
from crm.services import staff_create, staff_email, staff_username_check


def refusal(exc: ValidationError) -> str:
    """A service's refusal as one line, each message after the field it is about ("email: Enter a valid…")."""
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    return "; ".join(
        message if field == NON_FIELD_ERRORS else f"{field}: {message}"
        for field, messages in exc.message_dict.items()
        for message in messages
    )


class Command(BaseCommand):
    help = "Create a staff member with a role, a badge number and the units they serve."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--badge", required=True)
        parser.add_argument("--units", default="", help="Comma-separated unit codes, e.g. PE0101,PE0102")
        parser.add_argument("--name", default="", help="Full name")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-env",
            metavar="VARIABLE",
            default="",
            help="Read the password from this environment variable (for scripts, without a terminal) instead of "
            "asking for it twice.",
        )

    def handle(self, *args, username, role, badge, units, name, email, password_env, **options):
        codes = [c.strip().upper() for c in units.split(",") if c.strip()]
        found = list(Unit.objects.filter(code__in=codes))
        missing = sorted(set(codes) - {u.code for u in found})
        if missing:
            raise CommandError(f"Unknown unit codes: {', '.join(missing)}")
        try:  # before the password is asked for: a username or e-mail the service refuses is said at once
            staff_username_check(username, get_user_model())
            staff_email(email)
        except ValidationError as exc:
            raise CommandError(refusal(exc)) from None
        password = self.password(password_env)
        first, _, last = name.rpartition(" ")
        try:
            staff_create(
                actor=None,
                username=username,
                password=password,
                role=role,
                badge_number=badge,
                units=found,
                first_name=first,
                last_name=last,
                email=email,
            )
        except ValidationError as exc:
            raise CommandError(refusal(exc)) from None
        self.stdout.write(f"Created {username} ({role}) serving {', '.join(codes) or 'no unit'}.")

    def password(self, variable: str) -> str:
        """The new account's password: from the environment variable named, or typed twice at the terminal."""
        if variable:
            if variable not in os.environ:
                raise CommandError(f"The environment variable {variable} (--password-env) is not set.")
            return os.environ[variable]
        try:
            first = getpass.getpass("Password: ")
            second = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):
            raise CommandError(
                "No password given: run this at a terminal, or pass --password-env VARIABLE with the password in "
                "that environment variable."
            ) from None
        if first != second:
            raise CommandError("The two passwords differ; nothing was created.")
        return first
