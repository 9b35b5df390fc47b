"""``python -m lira`` (what ``torchrun -m lira stage NAME`` runs on every rank)."""

from lira.cli import app

app(prog_name="lira")
