"""``manage.py otp_enroll USERNAME``: give an administrator or superuser an authenticator for the admin's
two-factor sign-in, and print its secret, provisioning URI and QR code (as text) for them to scan."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from crm import two_factor


class Command(BaseCommand):
    help = "Enrol an authenticator app (TOTP) for a user and print its secret, URI and QR code."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--replace", action="store_true", help="Replace the user's authenticator (a lost or new phone)."
        )

    def handle(self, *args, username, replace=False, **options):
        user = get_user_model().objects.filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        device = two_factor.totp_enroll(actor=None, user=user, replace=replace)
        self.stdout.write(
            f"Authenticator of {username}: scan the code with the app, or type the secret into it. Then sign in "
            "at /admin/ with the password and the six digits the app shows.\n"
            + two_factor.provisioning_text(device)
        )
        if not two_factor.needs_second_factor(user):
            self.stdout.write(
                "Note: this user is not asked for a code (only administrators and superusers are, while "
                "TONGDAI_ADMIN_2FA is on)."
            )
