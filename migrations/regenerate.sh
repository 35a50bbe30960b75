#!/usr/bin/env bash
# Development only, while no installation exists: rebuild the initial migration from the
# models (all tables registered in models/tables.py) plus the audit triggers.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/0001_initial.py
CLSM_DATABASE_URL="sqlite:///$tmp/gen.db" .venv/bin/alembic -c migrations/alembic.ini \
  revision --autogenerate -m "initial" --rev-id 0001 >/dev/null
file=migrations/versions/0001_initial.py
python3 - "$file" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"Create Date: .*\n", "", text)
text = text.replace("from alembic import op\n", "from alembic import op\n\nimport models.base\nfrom models.audit import audit_trigger_statements\n")
text = text.replace("    # ### end Alembic commands ###\n",
    "    # ### end Alembic commands ###\n    for statement in audit_trigger_statements(op.get_bind().dialect.name):\n        op.execute(statement)\n", 1)
open(path, "w").write(text)
PY
.venv/bin/ruff format -q "$file" || true
rm -rf "$tmp"
echo "regenerated $file"
