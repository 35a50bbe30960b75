"""`clsm clsm create` (admins set up a CLSM) and `clsm directory import|export` (its network
from and to the coordinator's spreadsheet)."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

clsm_app = typer.Typer(help="CLSM de l'installation.", no_args_is_help=True)
directory_app = typer.Typer(
    help="Annuaire du réseau : structures, contacts, conventions.", no_args_is_help=True
)


def _actor() -> object:
    from models.core.audit import Actor
    from models.core.enums import ActorKind, Channel

    return Actor(ActorKind.SYSTEM, f"ligne de commande ({getpass.getuser()})", Channel.CLI)


@clsm_app.command("create")
def clsm_create(
    slug: str = typer.Option(..., help="Identifiant court (ex. bocage-bressuirais)"),
    name: str = typer.Option(..., help="Nom du CLSM"),
    territory: str = typer.Option("", help="Territoire couvert"),
    coordinator_name: str = typer.Option("", help="Nom de la coordination"),
    coordinator_email: str = typer.Option("", help="Adresse de la coordination"),
    time_zone: str = typer.Option("Europe/Paris", help="Fuseau horaire"),
    sender: str = typer.Option("", help="Adresse d'expédition des messages"),
    reply_to: str = typer.Option("", help="Adresse de réponse des messages"),
) -> None:
    """Crée un CLSM (avec le catalogue d'orientations par défaut)."""
    from pydantic import ValidationError

    from models.core import directory as d
    from models.core.audit import Actor
    from models.core.db import session_scope
    from models.core.errors import DomainError
    from service.forms import french_message

    try:
        data = d.ClsmCreate(
            slug=slug,
            name=name,
            territory=territory,
            coordinator_name=coordinator_name,
            coordinator_email=coordinator_email or None,
            time_zone=time_zone,
            sender_email=sender or None,
            reply_to_email=reply_to or None,
        )
    except ValidationError as error:
        for item in error.errors():
            field = str(item["loc"][0]) if item.get("loc") else ""
            typer.echo(f"--{field.replace('_', '-')} : {french_message(item)}", err=True)
        raise typer.Exit(2) from None
    actor = _actor()
    assert isinstance(actor, Actor)
    try:
        with session_scope() as session:
            row = d.create_clsm(session=session, data=data, actor=actor)
    except DomainError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"CLSM créé : {row.name} ({row.slug}).")


def print_plan(plan: object) -> None:
    from models.core.directory.sheet_import import Plan

    assert isinstance(plan, Plan)
    for line in plan.lines:
        typer.echo(f"Ligne {line.line} — {line.what} « {line.label} » : {line.action}")
        for change in line.changes:
            typer.echo(f"    {change}")
        if line.warning:
            typer.echo(f"    attention : {line.warning}")
    typer.echo(plan.summary + ".")


@directory_app.command("import")
def directory_import(
    file: Path = typer.Argument(..., help="Tableur .csv, .xlsx ou .ods"),
    clsm: str = typer.Option(..., "--clsm", help="Identifiant du CLSM"),
    dry_run: bool = typer.Option(
        False, "--dry-run", "--apercu", help="Montrer ce qui serait fait, sans rien enregistrer"
    ),
) -> None:
    """Importe l'annuaire d'un tableur : tout ou rien, avec un compte rendu par ligne."""
    from models.core import directory as d
    from models.core.audit import Actor
    from models.core.db import session_scope
    from models.core.directory import sheet, sheet_import
    from models.core.errors import DomainError

    if not file.is_file():
        typer.echo(f"Fichier introuvable : {file}", err=True)
        raise typer.Exit(2)
    actor = _actor()
    assert isinstance(actor, Actor)
    try:
        with session_scope() as session:
            owner = d.clsm_by_slug(session, clsm)
            assert owner.id is not None
            plan = sheet_import.plan_import(
                session=session, clsm_id=owner.id, filename=file.name, content=file.read_bytes()
            )
            print_plan(plan)
            if not dry_run:
                sheet_import.apply_plan(
                    session=session, clsm_id=owner.id, plan=plan, actor=actor, filename=file.name
                )
    except sheet.ImportRefused as refused:
        typer.echo("Import refusé, rien n'a été enregistré :", err=True)
        for problem in refused.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None
    except DomainError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None
    typer.echo("Aperçu seulement : rien n'a été enregistré." if dry_run else "Import enregistré.")


@directory_app.command("export")
def directory_export(
    clsm: str = typer.Option(..., "--clsm", help="Identifiant du CLSM"),
    output: Path = typer.Option(..., "--output", "-o", help="Fichier à écrire (.csv ou .xlsx)"),
) -> None:
    """Exporte l'annuaire dans le format de l'import (CSV « ; » UTF-8 ou .xlsx)."""
    from models.core import directory as d
    from models.core.audit import Actor
    from models.core.db import session_scope
    from models.core.directory import sheet_export
    from models.core.errors import DomainError

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        typer.echo("Format d'export : .csv ou .xlsx.", err=True)
        raise typer.Exit(2)
    actor = _actor()
    assert isinstance(actor, Actor)
    try:
        with session_scope() as session:
            owner = d.clsm_by_slug(session, clsm)
            assert owner.id is not None
            content = sheet_export.export(
                session=session, clsm_id=owner.id, fmt=suffix[1:], actor=actor
            )
    except DomainError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None
    output.write_bytes(content)
    typer.echo(f"Annuaire exporté : {output}")
