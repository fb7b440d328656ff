"""The billing reads sit below its services: the selectors never import them."""

import ast
from pathlib import Path

import billing

SELECTORS = Path(billing.__file__).parent / "selectors.py"


def test_selectors_do_not_import_services():
    imported = set()
    for node in ast.walk(ast.parse(SELECTORS.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {name for name in imported if name.startswith("billing.services")}
