from django.core.management.base import BaseCommand

from customers.services import search_statistics_refresh


class Command(BaseCommand):
    help = "Recount how common each search trigram is (PostgreSQL; run after big loads, and daily)."

    def handle(self, *args, **options):
        stored = search_statistics_refresh()
        self.stdout.write(f"{stored} trigram shares stored.")
