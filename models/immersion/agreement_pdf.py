"""The signed agreement as a document: a PDF with the parties, the host, the days, the
observation frame and the three signatures with their times (fpdf2, pure Python)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from models.core.errors import DomainError
from models.core.people import Clsm
from models.immersion.common import application_of, get_session, organisation, parties
from models.immersion.plan import days_label, when
from models.immersion.states import PARTIES, AgreementStatus
from models.immersion.tables import Agreement, Placement

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
"""DejaVu (Debian package fonts-dejavu-core): every accent and script a name may carry."""

SIGNATORY_ROLES = {
    "participant": "Le ou la stagiaire",
    "manager": "Pour la structure d'origine (responsable)",
    "tutor": "Pour la structure d'accueil (tuteur ou tutrice)",
}
UNDERTAKING = (
    "Le ou la stagiaire observe sans intervenir, dans le cadre défini ci-dessus. Il ou elle "
    "est tenu au secret professionnel et à la discrétion sur tout ce qu'il ou elle voit ou "
    "entend des personnes accompagnées ; aucune information nominative n'est notée ni "
    "transmise. La structure d'accueil désigne un tuteur ou une tutrice qui accompagne "
    "l'immersion ; la structure d'origine autorise l'absence de son agent aux jours convenus."
)


def agreement_pdf(session: Session, agreement: Agreement) -> bytes:
    """The agreement signed by its three parties, as a PDF; refused before the last signature."""
    if agreement.status is not AgreementStatus.SIGNED:
        raise DomainError("la convention n'est pas encore signée par les trois parties")
    row = get_session(session, agreement.session_id)
    placement = session.get(Placement, agreement.placement_id)
    assert placement is not None
    application = application_of(session, placement)
    people = parties(session, placement)
    clsm = session.get(Clsm, row.clsm_id)
    home = organisation(session, application.organisation_id).label
    host = organisation(session, placement.host_organisation_id).label

    # fpdf2 and its font tools weigh ~40 MiB: imported by the processes that make a PDF
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_title(f"Convention de stage d'immersion — {people['participant'].name}")
    pdf.set_author(clsm.name if clsm else "CLSM")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_margins(20, 20, 20)
    pdf.add_page()

    def heading(text: str, size: int = 12) -> None:
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def line(label: str, value: str) -> None:
        pdf.set_font("DejaVu", "B", 10)
        pdf.multi_cell(0, 6, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, value or "—", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    heading("Convention de stage d'immersion", 16)
    pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(
        0, 6, f"{clsm.name if clsm else 'CLSM'} — {row.title}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    heading("Les parties")
    line(
        "Stagiaire",
        f"{people['participant'].name}, {application.function or 'fonction non précisée'} ({home})",
    )
    line("Structure d'origine", f"{home}, représentée par {people['manager'].name}")
    line("Structure d'accueil", f"{host}, tuteur ou tutrice : {people['tutor'].name}")
    heading("L'immersion")
    line("Jours", days_label(placement.day_list))
    line("Période de la session", f"du {row.window_start:%d/%m/%Y} au {row.window_end:%d/%m/%Y}")
    heading("Cadre d'observation")
    line("Pourra être observé", placement.may_observe)
    line("Ne pourra pas être observé (secret professionnel)", placement.may_not_observe)
    line("Engagement de confidentialité", UNDERTAKING)
    heading("Signatures")
    for party in PARTIES:
        signed_at = getattr(agreement, f"{party}_signed_at")
        assert signed_at is not None
        line(
            SIGNATORY_ROLES[party],
            f"{people[party].name} — signé électroniquement le {when(signed_at)} "
            "(heure de Paris), par son lien personnel",
        )
    return bytes(pdf.output())


def agreement_pdf_name(session: Session, agreement: Agreement) -> str:
    """The file name of the document: convention-<session>-<agreement>.pdf."""
    return f"convention-session-{agreement.session_id}-{agreement.id}.pdf"
