from django.core.management.base import BaseCommand

from crm.services import organisation_load_reference


class Command(BaseCommand):
    help = "Create or update EVN's corporations, companies and units from the reference data (idempotent)."

    def handle(self, *args, **options):
        created = organisation_load_reference()
        self.stdout.write(
            "Organisation loaded: {corporations} corporations, {companies} companies, {units} units new.".format(
                **created
            )
        )
