"""Contract numbers as every path now stores and looks them up (``customers.normalise.normalise_code``): trimmed
and in capitals. Before, the admin stored a typed number as it was, so ``pe01000000001-06`` could not be found by
the imports, the APIs or the reading file. A number whose capitals another contract already has is left as it is
(the unique index would refuse it) and named on the console, for a clerk to settle."""

from django.db import migrations
from django.db.models import F
from django.db.models.functions import Trim, Upper


def numbers_in_capitals(apps, schema_editor):
    Contract = apps.get_model("customers", "Contract")
    alias = schema_editor.connection.alias
    contracts = Contract.objects.using(alias)
    wrong = contracts.annotate(key=Upper(Trim("number"))).exclude(number=F("key")).order_by("id")
    for contract in wrong.only("id", "number"):
        key = contract.number.strip().upper()
        if contracts.filter(number=key).exists():
            print(f"\n  Contract {contract.id} keeps its number {contract.number!r}: {key} is another contract's.")
            continue
        contracts.filter(pk=contract.pk).update(number=key)


class Migration(migrations.Migration):
    dependencies = [("customers", "0006_assignment_one_open_per_contract")]

    operations = [migrations.RunPython(numbers_in_capitals, migrations.RunPython.noop, elidable=True)]
