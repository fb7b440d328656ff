"""The layers of the code: each folder imports only from those below it, at the top of a module or inside a
function alike, so the layout tells a newcomer what may depend on what.

    tongdai   the project: settings, URLs, WSGI (top)
    reports   the managers' dashboard and monthly reports
    billing   readings, bills, disputes, rebates
    tickets   tickets, outages, work orders, callbacks
    customers customers, contracts, meters, the card
    crm       the organisation, staff, roles, scoping and write permissions, and what they keep (the outbox,
              the export log, API tokens)
    core      the plumbing: database helpers, logs, middleware, the task registry, the API's base classes
              (bottom; no data of its own)

An app shows its data on a page of a lower one by registering with it (the card's sections,
``customers.card_sections``; the dashboard's widgets, ``crm.dashboard_widgets``), never by being imported from
below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "crm", "customers", "tickets", "billing", "reports", "tongdai"]  # bottom to top


def imported_packages(path: Path) -> set[str]:
    """The top-level packages ``path`` imports (absolute imports anywhere in the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def upward_imports(layer: str) -> list[str]:
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    problems = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for package in sorted(imported_packages(path) & above):
            problems.append(f"{path.relative_to(ROOT)} imports {package}")
    return problems


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_above_it(layer):
    assert upward_imports(layer) == []


def test_the_walk_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from billing.models import Invoice\n    import tickets.sla\n")
    assert imported_packages(module) == {"billing", "tickets"}
