from django.core.management.base import BaseCommand

from billing.services import tariffs_load_reference


class Command(BaseCommand):
    help = "Create the public price tables and VAT rates if missing (idempotent: existing dates are kept)."

    def handle(self, *args, **options):
        created = tariffs_load_reference()
        self.stdout.write("Tariffs: {tables} price tables, {vat} VAT rates new.".format(**created))
