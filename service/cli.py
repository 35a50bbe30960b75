"""`clsm`: the command line of the installation (database, audit, clock, accounts, demo)."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import typer

from models.core.settings import fail_fast
from service.directory_cli import clsm_app, directory_app

app = typer.Typer(help="Moteur de processus des CLSM.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Base de données de l'application.", no_args_is_help=True)
audit_app = typer.Typer(help="Journal d'audit.", no_args_is_help=True)
clock_app = typer.Typer(help="Horloge (démonstration et tests uniquement).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(clock_app, name="clock")
mail_app = typer.Typer(help="Boîte de réception locale (développement).", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
report_app = typer.Typer(help="Bilans annuels.", no_args_is_help=True)
app.add_typer(report_app, name="report")
users_app = typer.Typer(
    help="Comptes du service (coordination, audit, admin).", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(clsm_app, name="clsm")
app.add_typer(directory_app, name="directory")

PROJECT_DIR = Path(__file__).resolve().parent.parent


@app.callback()
def _settings_first() -> None:
    """Every command starts by validating the settings (one clear line if wrong)."""
    fail_fast()


def migrate(url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_DIR / "migrations" / "alembic.ini"))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Applique les migrations (crée la base si besoin)."""
    migrate()
    typer.echo("Base de données à jour.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Vérifie les chaînes d'audit, leurs sceaux et les points de contrôle signés ; code de
    sortie 1 au premier événement qui ne correspond pas."""
    from models.core.audit import verify_all
    from models.core.checkpoints import verify_checkpoints
    from models.core.db import session_scope

    with session_scope() as session:
        report = verify_all(session)
        checkpoints = verify_checkpoints(session)
    if report.ok and checkpoints.ok:
        typer.echo(
            f"Journal intègre : {report.chains} dossiers, {report.events} événements, "
            f"{checkpoints.checkpoints} points de contrôle signés."
        )
        return
    for broken in report.breaks:
        typer.echo(f"CHAÎNE ROMPUE — {broken}", err=True)
    for problem in checkpoints.problems:
        typer.echo(f"POINT DE CONTRÔLE — {problem}", err=True)
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Signe la tête de chaque chaîne dans un fichier de CLSM_CHECKPOINT_DIR."""
    from models.core.checkpoints import write_checkpoint
    from models.core.db import session_scope

    with session_scope() as session:
        path = write_checkpoint(session)
    typer.echo(f"Point de contrôle écrit : {path}" if path else "Rien de nouveau à signer.")


def _case_argument(case: str) -> tuple[str, int]:
    from models.core.enums import CaseType

    kind, _, number = case.partition(":")
    if kind not in {c.value for c in CaseType} or not number.isdigit():
        typer.echo(
            f"Dossier « {case} » : attendu TYPE:NUMÉRO, par exemple saisine:3 "
            f"(types : {', '.join(c.value for c in CaseType)}).",
            err=True,
        )
        raise typer.Exit(2)
    return kind, int(number)


@audit_app.command("export")
def audit_export(
    case: str = typer.Argument(..., help="Dossier, par exemple saisine:3"),
    output: Path = typer.Option(None, "--output", "-o", help="Fichier du paquet"),
) -> None:
    """Écrit le paquet d'audit d'un dossier (événements, points de contrôle, clé publique),
    vérifiable hors ligne avec `clsm audit verify-bundle`."""
    import json

    from models.core.checkpoints import export_bundle
    from models.core.db import session_scope

    case_type, case_id = _case_argument(case)
    with session_scope() as session:
        bundle = export_bundle(session, case_type, case_id)
    if not bundle["events"]:
        typer.echo(f"Aucun événement pour le dossier {case}.", err=True)
        raise typer.Exit(1)
    target = output or Path(f"audit-{case_type}-{case_id}.json")
    target.write_text(json.dumps(bundle, ensure_ascii=False, indent=1, default=str))
    typer.echo(f"Paquet écrit : {target} ({len(bundle['events'])} événements)")


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    bundle: Path = typer.Argument(..., help="Paquet écrit par `clsm audit export`"),
    public_key: str = typer.Option("", help="Clé publique attendue (hexadécimal)"),
) -> None:
    """Vérifie un paquet d'audit hors ligne (sans base ni clé d'audit)."""
    import json

    from models.core.checkpoints import verify_bundle

    try:
        content = json.loads(bundle.read_text())
    except (OSError, ValueError):
        typer.echo(f"Paquet illisible : {bundle}", err=True)
        raise typer.Exit(2) from None
    problems = verify_bundle(content, public_key or None)
    if problems:
        for problem in problems:
            typer.echo(f"PAQUET NON CONFORME — {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"Paquet intègre : dossier {content['case']}, {len(content['events'])} événements, "
        f"{len(content['checkpoints'])} points de contrôle, clé publique {content['public_key']}."
    )


@clock_app.command("show")
def clock_show() -> None:
    """Affiche l'heure de l'installation et son décalage."""
    from models.core import clock
    from models.core.db import session_scope
    from models.core.settings import get_settings
    from service.labels import french_duration

    with session_scope() as session:
        moment, delta = clock.now(session), clock.offset(session)
    typer.echo(
        f"{moment.astimezone(get_settings().tz):%d/%m/%Y %H:%M} "
        f"(décalage : {french_duration(delta)})"
    )


@clock_app.command("advance")
def clock_advance(
    days: float = typer.Option(0.0, help="Jours"), hours: float = typer.Option(0.0, help="Heures")
) -> None:
    """Avance l'horloge de l'installation (refusé en production)."""
    from models.core import clock
    from models.core.db import session_scope
    from models.core.settings import get_settings

    try:
        with session_scope() as session:
            moment = clock.advance(session=session, delta=timedelta(days=days, hours=hours))
    except clock.ClockRefused as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Horloge : {moment.astimezone(get_settings().tz):%d/%m/%Y %H:%M}")


@clock_app.command("reset")
def clock_reset() -> None:
    """Remet l'horloge à l'heure réelle."""
    from models.core import clock
    from models.core.db import session_scope

    with session_scope() as session:
        clock.set_offset(session=session, delta=timedelta(0))
    typer.echo("Horloge remise à l'heure réelle.")


@mail_app.command("sink")
def mail_sink() -> None:
    """Démarre la boîte de réception SMTP locale (aiosmtpd)."""
    from models.core.settings import get_settings
    from notifications.sink import run_forever

    settings = get_settings()
    run_forever(settings.mail_sink_dir, settings.smtp_host, settings.smtp_port)


@mail_app.command("list")
def mail_list(limit: int = typer.Option(50, help="Nombre de messages")) -> None:
    """Liste les messages reçus par la boîte locale, les plus récents d'abord."""
    from models.core.settings import get_settings
    from notifications.sink import list_mails

    mails = list_mails(get_settings().mail_sink_dir)[:limit]
    if not mails:
        typer.echo("Aucun message reçu.")
    for mail in mails:
        typer.echo(f"{mail.id}  {mail.received_at:%d/%m %H:%M}  {mail.to:<40.40}  {mail.subject}")


@mail_app.command("show")
def mail_show(mail_id: str) -> None:
    """Affiche un message (texte brut) de la boîte locale."""
    from models.core.settings import get_settings
    from notifications.sink import find_mail

    mail = find_mail(get_settings().mail_sink_dir, mail_id)
    if mail is None:
        typer.echo(f"Message {mail_id} introuvable.", err=True)
        raise typer.Exit(1)
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        typer.echo(f"{header}: {mail.message.get(header, '')}")
    typer.echo("")
    typer.echo(mail.text())
    if mail.calendar():
        typer.echo("[invitation agenda jointe]")


@report_app.command("saisines")
def report_saisines(
    year: int = typer.Option(..., help="Année du bilan"),
    clsm: str = typer.Option("poitiers", help="Identifiant du CLSM"),
    csv: bool = typer.Option(False, "--csv", help="Sortie CSV (séparateur ;)"),
) -> None:
    """Tableau des saisines de la cellule pour une année, puis les totaux par niveau."""
    from models.core.db import session_scope
    from models.core.people import get_clsm
    from models.saisine.report import yearly_report, yearly_report_csv

    with session_scope() as session:
        found = get_clsm(session=session, slug=clsm)
        if found is None or found.id is None:
            typer.echo(f"CLSM « {clsm} » inconnu.", err=True)
            raise typer.Exit(1)
        if csv:
            typer.echo(yearly_report_csv(session, found.id, year), nl=False)
            return
        report = yearly_report(session, found.id, year)
    typer.echo(f"Saisines de la cellule du {found.name} en {year}\n")
    for row in report.rows:
        typer.echo(f"{row.month:<10} {row.referrer}\n           {row.decisions}")
        if row.note:
            typer.echo(f"           Note : {row.note}")
    typer.echo("\n" + " ; ".join(f"{lvl.value} : {n}" for lvl, n in report.counts.items()))


@users_app.command("add")
def users_add(
    email: str = typer.Option(..., help="Adresse électronique (identifiant)"),
    name: str = typer.Option(..., help="Nom affiché"),
    role: str = typer.Option(..., help="coordinator, auditor ou admin"),
    clsm: str = typer.Option("", "--clsm", help="Identifiant (slug) du CLSM"),
    password: str = typer.Option(
        ..., prompt="Mot de passe", hide_input=True, confirmation_prompt=True
    ),
) -> None:
    """Crée un compte (mot de passe haché avec argon2)."""
    from sqlmodel import select

    from models.core import clock
    from models.core.db import session_scope
    from models.core.enums import Role
    from models.core.people import User, get_clsm
    from service.security import hash_password

    try:
        chosen = Role(role)
    except ValueError:
        typer.echo("Rôle inconnu : coordinator, auditor ou admin.", err=True)
        raise typer.Exit(2) from None
    if len(password) < 12:
        typer.echo("Mot de passe trop court (12 caractères au moins).", err=True)
        raise typer.Exit(2)
    address = email.strip().lower()
    with session_scope() as session:
        found = get_clsm(session=session, slug=clsm) if clsm else None
        if clsm and found is None:
            typer.echo(f"CLSM inconnu : {clsm}.", err=True)
            raise typer.Exit(2)
        if chosen is not Role.ADMIN and found is None:
            typer.echo("--clsm est obligatoire pour la coordination et l'audit.", err=True)
            raise typer.Exit(2)
        if session.exec(select(User).where(User.email == address)).first() is not None:
            typer.echo(f"Un compte existe déjà pour {address}.", err=True)
            raise typer.Exit(1)
        session.add(
            User(
                email=address,
                name=name,
                role=chosen,
                clsm_id=found.id if found else None,
                password_hash=hash_password(password),
                created_at=clock.now(session),
            )
        )
    typer.echo(f"Compte créé : {address} ({chosen.value}).")


@users_app.command("password")
def users_password(
    email: str,
    password: str = typer.Option(
        ..., prompt="Nouveau mot de passe", hide_input=True, confirmation_prompt=True
    ),
) -> None:
    """Change le mot de passe d'un compte et met fin à toutes ses sessions."""
    from sqlmodel import select

    from models.core.access import revoke_user_sessions
    from models.core.db import session_scope
    from models.core.people import User
    from service.security import hash_password

    if len(password) < 12:
        typer.echo("Mot de passe trop court (12 caractères au moins).", err=True)
        raise typer.Exit(2)
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        if user is None or user.id is None:
            typer.echo(f"Aucun compte pour {email}.", err=True)
            raise typer.Exit(1)
        user.password_hash = hash_password(password)
        session.add(user)
        ended = revoke_user_sessions(session=session, user_id=user.id)
    typer.echo(f"Mot de passe changé ; {ended} session(s) fermée(s).")


@users_app.command("token")
def users_token(email: str) -> None:
    """Crée un nouveau jeton d'API pour un compte (l'ancien cesse de fonctionner)."""
    from sqlmodel import select

    from models.core.db import session_scope
    from models.core.people import User
    from service.security import api_token_hash, new_api_token

    token = new_api_token()
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        if user is None:
            typer.echo(f"Aucun compte pour {email}.", err=True)
            raise typer.Exit(1)
        user.api_token_hash = api_token_hash(token)
        session.add(user)
    typer.echo(token)


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(0)) -> None:
    """Démarre le service web (liens des partenaires, historique, API)."""
    import uvicorn

    from models.core.settings import get_settings

    bind_port = port or int(get_settings().base_url.rsplit(":", 1)[-1].split("/")[0])
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=host,
        port=bind_port,
        # the client's address is read by the service from CLSM_TRUSTED_PROXIES only
        proxy_headers=False,
        log_level="info",
    )


@app.command("prefect-ready")
def prefect_ready(timeout: float = typer.Option(120.0, help="Secondes")) -> None:
    """Attend que le serveur Prefect réponde."""
    from service.orchestration import wait_for_prefect

    if not wait_for_prefect(timeout):
        typer.echo("Le serveur Prefect ne répond pas.", err=True)
        raise typer.Exit(1)


@app.command("setup")
def setup(block: bool = typer.Option(True, help="Rester actif après la mise en place")) -> None:
    """Mise en place de `make up` : file de travail, déploiements, données de démo, URLs."""
    import signal as signals

    from models.core.settings import get_settings
    from service.orchestration import deploy_all, ensure_work_pool, wait_for_prefect

    settings = get_settings()
    if not wait_for_prefect(180):
        typer.echo("Le serveur Prefect ne répond pas.", err=True)
        raise typer.Exit(1)
    ensure_work_pool()
    deploy_all(PROJECT_DIR)
    from models.core.settings import Environment
    from service.demo import load_demo, load_immersion_demo, load_saisine_demo

    if settings.env is Environment.PRODUCTION:
        typer.echo("Production : aucune donnée ni aucun compte de démonstration.")
    else:
        typer.echo(load_demo())
        typer.echo(load_saisine_demo())
        typer.echo(load_immersion_demo())
    typer.echo(
        "\n================ CLSM prêt ================\n"
        f"  Coordination      : {settings.base_url}/  (compte du service)\n"
        f"  Interface Prefect : {settings.ui_url}/  (par le service, après connexion)\n"
        f"  Boîte mail locale : {settings.base_url}/dev/mails   (ou : clsm mail list)\n"
        "  Arrêt : Ctrl-C\n"
        "===========================================\n"
    )
    sys.stdout.flush()
    while block:
        signals.pause()


@app.command("prefect-auth")
def prefect_auth_command() -> None:
    """Affiche le secret du serveur Prefect (créé sous var/ au premier appel), pour `make up`."""
    from models.core.settings import get_settings

    typer.echo(get_settings().prefect_auth)


@app.command("purge")
def purge_command() -> None:
    """Efface les données personnelles des saisines closes depuis CLSM_RETENTION_YEARS ans."""
    from models.core.db import session_scope
    from models.core.settings import get_settings
    from models.saisine.retention import purge_closed_saisines

    years = get_settings().retention_years
    with session_scope() as session:
        purged = purge_closed_saisines(session=session, older_than_years=years)
    typer.echo(
        f"{len(purged)} saisine(s) anonymisée(s) (closes depuis plus de {years} ans)"
        + (f" : {', '.join(purged)}" if purged else ".")
    )


def _database_urls(with_prefect: bool) -> dict[str, str]:
    """The app database and, if asked, Prefect's (PREFECT_SERVER_DATABASE_CONNECTION_URL,
    or Prefect's SQLite file under PREFECT_HOME, when it exists)."""
    from sqlalchemy.engine import make_url

    from models.core.settings import get_settings

    urls = {"app": get_settings().db_url}
    if with_prefect:
        from prefect.settings import get_current_settings

        current = get_current_settings()
        secret = current.server.database.connection_url
        url = secret.get_secret_value() if secret else f"sqlite:///{current.home}/prefect.db"
        if not url.startswith("sqlite") or Path(make_url(url).database or "").exists():
            urls["prefect"] = url
        else:
            typer.echo(f"Base de Prefect absente ({url}) : non sauvegardée.", err=True)
    return urls


PREFECT_OPTION = typer.Option(True, "--prefect/--sans-prefect", help="Avec la base de Prefect")


@app.command("backup")
def backup_command(
    destination: Path = typer.Argument(..., help="Fichier de sauvegarde"),
    prefect: bool = PREFECT_OPTION,
) -> None:
    """Sauvegarde cohérente des bases (application et Prefect), même en fonctionnement."""
    from models.core.backup import backup_installation

    path = backup_installation(_database_urls(prefect), destination)
    typer.echo(f"Sauvegarde écrite : {path}")


@app.command("restore")
def restore_command(
    snapshot: Path = typer.Argument(..., help="Fichier de sauvegarde"),
    prefect: bool = PREFECT_OPTION,
) -> None:
    """Restaure les bases depuis une sauvegarde (installation arrêtée, serveur Prefect compris)."""
    from models.core.backup import restore_installation

    if not snapshot.exists():
        typer.echo(f"Sauvegarde introuvable : {snapshot}", err=True)
        raise typer.Exit(1)
    restored = restore_installation(_database_urls(prefect), snapshot)
    migrate()
    names = {"app": "application", "prefect": "Prefect"}
    typer.echo(
        "Base(s) restaurée(s) : "
        + ", ".join(names[p] for p in restored)
        + " ; les dossiers ouverts reprennent au prochain passage du tick."
    )


def main() -> None:  # pragma: no cover - console entry
    os.environ.setdefault("PYTHONUTF8", "1")
    app(prog_name="clsm")


if __name__ == "__main__":  # pragma: no cover
    main()
