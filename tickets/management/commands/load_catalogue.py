from django.core.management.base import BaseCommand

from tickets.services import catalogue_load_reference


class Command(BaseCommand):
    help = "Create the request categories, their first time limits and the public holidays if missing (idempotent)."

    def handle(self, *args, **options):
        created = catalogue_load_reference()
        self.stdout.write(
            "Catalogue: {categories} categories, {policies} policies, {holidays} holidays new.".format(
                **created
            )
        )
