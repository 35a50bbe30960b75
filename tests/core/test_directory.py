"""The network directory: name matching, audited changes, import and export of the
coordinator's spreadsheet (.csv, .xlsx, .ods), conventions and the partner choice."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape

import pytest
from sqlmodel import Session

from models.core import clock
from models.core import directory as d
from models.core.audit import Actor, case_events
from models.core.directory import sheet, sheet_export, sheet_import
from models.core.enums import CaseType
from models.core.errors import DomainError, StaleUpdate
from models.core.people import Clsm, Organisation, valid_partners
from tests import factories

ACTOR = Actor.system("test")


@pytest.fixture
def clsm(session: Session) -> Clsm:
    row = d.create_clsm(
        session=session,
        data=d.ClsmCreate(
            slug="bocage-bressuirais",
            name="CLSM du Bocage Bressuirais",
            territory="Agglomération du Bocage Bressuirais",
            coordinator_email="coordination@bocage.example",
        ),
        actor=ACTOR,
    )
    session.commit()
    return row


def _id(row: Clsm) -> int:
    assert row.id is not None
    return row.id


def _structure(session: Session, clsm: Clsm, name: str, **extra: object) -> Organisation:
    row = d.create_structure(
        session=session,
        clsm_id=_id(clsm),
        data=d.StructureCreate(name=name, **extra),  # type: ignore[arg-type]
        actor=ACTOR,
    )
    session.commit()
    return row


def test_typed_names_match_the_structure_whatever_their_case_accents_and_hyphens(
    session: Session, clsm: Clsm
) -> None:
    member = _structure(session, clsm, "Un chez Soi d'Abord", aliases=["UCSD Niort"])
    for typed in [
        "un chez soi d'abord",
        "Un Chez-Soi d'Abord ",
        "UCSD  niort",
        "Un chez soi d’abord",
    ]:
        found = d.match_structure(session=session, clsm_id=_id(clsm), name=typed)
        assert found.found is not None and found.found.id == member.id, typed
    near = d.match_structure(session=session, clsm_id=_id(clsm), name="Un chez soi d'abor")
    assert near.found is None
    assert [o.id for o in near.near] == [member.id]


def test_a_near_name_is_proposed_never_a_silent_duplicate(session: Session, clsm: Clsm) -> None:
    _structure(session, clsm, "Centre hospitalier Nord Deux-Sèvres")
    with pytest.raises(
        d.NearDuplicate, match="ressemble à « Centre hospitalier Nord Deux-Sèvres »"
    ):
        _structure(session, clsm, "Centre hospitalier Nord-Deux Sèvre")
    session.rollback()
    with pytest.raises(DomainError, match="désigne déjà la structure"):
        _structure(session, clsm, "CENTRE HOSPITALIER NORD DEUX SEVRES")
    session.rollback()
    confirmed = d.create_structure(
        session=session,
        clsm_id=_id(clsm),
        data=d.StructureCreate(name="Centre hospitalier Nord-Deux Sèvre"),
        actor=ACTOR,
        confirm_near=True,
    )
    assert confirmed.id is not None


def test_changes_are_versioned_and_audited_before_and_after(session: Session, clsm: Clsm) -> None:
    row = _structure(session, clsm, "CCAS de Bressuire", address="Bressuire")
    d.update_structure(
        session=session,
        row=row,
        data=d.StructureCreate(name="CCAS de Bressuire", address="2 rue de la Mairie"),
        version=1,
        actor=ACTOR,
    )
    session.commit()
    assert row.version == 2
    with pytest.raises(StaleUpdate):
        d.update_structure(
            session=session,
            row=row,
            data=d.StructureCreate(name="CCAS de Bressuire", address="ailleurs"),
            version=1,
            actor=ACTOR,
        )
    session.rollback()
    d.set_structure_active(session=session, row=row, active=False, version=2, actor=ACTOR)
    session.commit()
    events = case_events(session, CaseType.CLSM.value, _id(clsm))
    assert [e.action for e in events] == [
        "directory.clsm.created",
        "directory.structure.created",
        "directory.structure.updated",
        "directory.structure.deactivated",
    ]
    assert events[2].payload is not None
    assert events[2].payload["changements"] == {
        "address": {"avant": "Bressuire", "après": "2 rue de la Mairie"}
    }


def test_a_convention_expired_yesterday_leaves_the_partner_choice_today(
    session: Session, clsm: Clsm
) -> None:
    today = clock.now(session).date()
    kept = _structure(session, clsm, "Mission locale")
    ended = _structure(session, clsm, "UDAF des Deux-Sèvres")
    for org, ends_on in ((kept, today + timedelta(days=400)), (ended, today - timedelta(days=1))):
        assert org.id is not None
        d.create_convention(
            session=session,
            clsm_id=_id(clsm),
            data=d.ConventionCreate(
                organisation_id=org.id, starts_on=date(2020, 1, 1), ends_on=ends_on
            ),
            actor=ACTOR,
        )
    session.commit()
    assert [o.name for o in valid_partners(session=session, clsm_id=_id(clsm), on=today)] == [
        "Mission locale"
    ]
    yesterday = today - timedelta(days=1)
    assert {o.name for o in valid_partners(session=session, clsm_id=_id(clsm), on=yesterday)} == {
        "Mission locale",
        "UDAF des Deux-Sèvres",
    }
    d.set_structure_active(session=session, row=kept, active=False, version=None, actor=ACTOR)
    session.commit()
    assert valid_partners(session=session, clsm_id=_id(clsm), on=today) == []


def test_conventions_ending_within_60_days_are_listed(session: Session, clsm: Clsm) -> None:
    today = date(2026, 12, 1)
    soon = _structure(session, clsm, "ADAPEI 79")
    later = _structure(session, clsm, "Gendarmerie de Bressuire")
    renewed = _structure(session, clsm, "Éducation nationale")
    for org, periods in (
        (soon, [(date(2023, 1, 1), date(2027, 1, 15))]),
        (later, [(date(2023, 1, 1), date(2027, 6, 30))]),
        (renewed, [(date(2023, 1, 1), date(2027, 1, 10)), (date(2027, 1, 11), date(2030, 1, 1))]),
    ):
        for starts_on, ends_on in periods:
            assert org.id is not None
            d.create_convention(
                session=session,
                clsm_id=_id(clsm),
                data=d.ConventionCreate(
                    organisation_id=org.id, starts_on=starts_on, ends_on=ends_on
                ),
                actor=ACTOR,
            )
    session.commit()
    assert [o.name for _p, o in d.expiring_conventions(session, _id(clsm), today)] == ["ADAPEI 79"]


def test_orientation_catalogue_and_past_totals(session: Session, clsm: Clsm) -> None:
    catalogue = d.orientation_catalogue(session, _id(clsm))
    assert catalogue[1].label == "Orientation vers le DAC-PTA"
    added = d.add_orientation(
        session=session,
        clsm_id=_id(clsm),
        data=d.OrientationCreate(label="Orientation vers l'équipe mobile"),
        actor=ACTOR,
    )
    d.rename_orientation(
        session=session,
        row=catalogue[1],
        data=d.OrientationCreate(label="Orientation vers le DAC"),
        version=1,
        actor=ACTOR,
    )
    d.set_orientation_active(
        session=session, row=catalogue[0], active=False, version=1, actor=ACTOR
    )
    labels = [e.label for e in d.orientation_catalogue(session, _id(clsm))]
    assert labels[0] == "Orientation vers le DAC"
    assert labels[-1] == added.label
    assert "Mise en lien avec la coordinatrice de parcours" not in labels
    for year, counts in ((2019, (12, 3, 1)), (2020, (12, 2, 0)), (2021, (8, 1, 2))):
        d.set_past_totals(
            session=session,
            clsm_id=_id(clsm),
            data=d.PastTotalsCreate(
                year=year, level1=counts[0], level2=counts[1], urgent=counts[2]
            ),
            version=None,
            actor=ACTOR,
        )
    session.commit()
    assert [(t.year, t.level1) for t in d.past_totals(session, _id(clsm))] == [
        (2019, 12),
        (2020, 12),
        (2021, 8),
    ]


# -- import / export ---------------------------------------------------------------------

HEADER = ";".join(h for _k, h in sheet.COLUMNS)


def _csv(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode("utf-8")


def _line(**cells: str) -> str:
    return ";".join(cells.get(k, "") for k, _h in sheet.COLUMNS)


NETWORK = [
    _line(
        type="structure",
        structure="Centre hospitalier Nord Deux-Sèvres",
        short_name="CHNDS",
        aliases="CH de Thouars | Hôpital de Bressuire",
        kind="établissement de santé (psychiatrie, hôpital)",
        permanent_member="oui",
        rotation_order="1",
    ),
    _line(
        type="structure",
        structure="CCAS de Bressuire",
        kind="service social",
        permanent_member="oui",
        rotation_order="2",
    ),
    _line(
        type="contact",
        structure="CH de Thouars",
        name="Dr Anne Roy",
        function="Psychiatre",
        email="anne.roy@chnds.example",
        phone="05 49 00 00 01",
        roles="référent saisines",
    ),
    _line(
        type="contact",
        structure="ccas de bressuire",
        name="Yves Caillaud",
        email="Yves.Caillaud@ccas.example",
        roles="contact immersion, responsable",
    ),
    _line(
        type="convention",
        structure="CCAS de Bressuire",
        signed_on="12/01/2023",
        starts_on="01/01/2023",
        ends_on="31/12/2027",
        document_ref="CONV-2023-04",
    ),
]


def test_import_creates_the_network_then_export_import_is_a_no_op(
    session: Session, clsm: Clsm
) -> None:
    plan = sheet_import.import_file(
        session=session,
        clsm_id=_id(clsm),
        filename="reseau.csv",
        content=_csv(*NETWORK),
        actor=ACTOR,
    )
    session.commit()
    assert [(p.line, p.what, p.action) for p in plan.lines] == [
        (2, "structure", "création"),
        (3, "structure", "création"),
        (4, "contact", "création"),
        (5, "contact", "création"),
        (6, "convention", "création"),
    ]
    assert [o.name for o in d.cell_members(session, _id(clsm))] == [
        "Centre hospitalier Nord Deux-Sèvres",
        "CCAS de Bressuire",
    ]
    caillaud = d.contact_by_email(session, _id(clsm), "yves.caillaud@ccas.example")
    assert caillaud is not None and caillaud.roles == ["immersion", "manager"]
    events = len(case_events(session, CaseType.CLSM.value, _id(clsm)))

    for exported, name in (
        (sheet_export.export_csv(session, _id(clsm)), "annuaire.csv"),
        (sheet_export.export_xlsx(session, _id(clsm)), "annuaire.xlsx"),
    ):
        again = sheet_import.import_file(
            session=session, clsm_id=_id(clsm), filename=name, content=exported, actor=ACTOR
        )
        session.commit()
        assert {p.action for p in again.lines} == {"inchangé"}, [p.changes for p in again.lines]
        assert len(again.lines) == 5
        assert len(case_events(session, CaseType.CLSM.value, _id(clsm))) == events


def test_a_file_with_three_bad_rows_is_refused_whole(session: Session, clsm: Clsm) -> None:
    bad = _csv(
        *NETWORK[:2],
        _line(type="contact", structure="CCAS de Bressuire", name="Sans Courriel"),
        _line(
            type="contact",
            structure="Mairie de Cerizay",
            name="Jeanne Bon",
            email="jeanne.bon@cerizay.example",
        ),
        _line(
            type="convention",
            structure="CCAS de Bressuire",
            starts_on="01/01/2024",
            ends_on="31/02/2027",
        ),
        NETWORK[2],
    )
    with pytest.raises(sheet.ImportRefused) as refused:
        sheet_import.import_file(
            session=session, clsm_id=_id(clsm), filename="reseau.csv", content=bad, actor=ACTOR
        )
    session.rollback()
    assert refused.value.problems == [
        "Ligne 4 : courriel manquant.",
        "Ligne 5 : structure inconnue « Mairie de Cerizay ».",
        "Ligne 6 : date invalide « 31/02/2027 » (Valable au, attendu jj/mm/aaaa).",
    ]
    assert d.structures(session, _id(clsm)) == []
    assert [e.action for e in case_events(session, CaseType.CLSM.value, _id(clsm))] == [
        "directory.clsm.created"
    ]


def test_an_unknown_structure_near_a_known_one_is_proposed(session: Session, clsm: Clsm) -> None:
    _structure(session, clsm, "Un chez Soi d'Abord")
    content = _csv(
        _line(
            type="contact",
            structure="Un chez soi d'abor",
            name="Paul Lime",
            email="paul.lime@ucsd.example",
        ),
    )
    with pytest.raises(sheet.ImportRefused) as refused:
        sheet_import.plan_import(
            session=session, clsm_id=_id(clsm), filename="a.csv", content=content
        )
    assert refused.value.problems == [
        "Ligne 2 : structure inconnue « Un chez soi d'abor » ; vouliez-vous dire "
        "« Un chez Soi d'Abord » ?"
    ]


def test_windows_1252_semicolon_csv_reads_right(session: Session, clsm: Clsm) -> None:
    text = "\r\n".join(
        [
            "Type;Structure;Nom;Fonction;Courriel;Rôles",
            "structure;Association Aidants Écoute;;;;",
            "contact;association aidants ecoute;Hélène Gâtineau;Chargée d'accueil;"
            "helene.gatineau@aae.example;référent saisines",
        ]
    )
    plan = sheet_import.import_file(
        session=session,
        clsm_id=_id(clsm),
        filename="export-excel.csv",
        content=text.encode("cp1252"),
        actor=ACTOR,
    )
    session.commit()
    assert [p.action for p in plan.lines] == ["création", "création"]
    contact = d.contact_by_email(session, _id(clsm), "helene.gatineau@aae.example")
    assert contact is not None
    assert (contact.name, contact.function) == ("Hélène Gâtineau", "Chargée d'accueil")
    assert [o.name for o in d.structures(session, _id(clsm))] == ["Association Aidants Écoute"]


def _ods(rows: list[list[object]]) -> bytes:
    """A minimal OpenDocument spreadsheet, as LibreOffice writes one (dates as date cells)."""

    def cell(value: object) -> str:
        if isinstance(value, date):
            kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
            shown = f"{value:%d/%m/%Y}"
        else:
            kind, shown = 'office:value-type="string"', escape(str(value))
        return f"<table:table-cell {kind}><text:p>{shown}</text:p></table:table-cell>"

    body = "".join(
        "<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Annuaire">'
        f"{body}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet"
        )
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def test_an_ods_file_reads_right_with_its_date_cells(session: Session, clsm: Clsm) -> None:
    content = _ods(
        [
            ["Type", "Structure", "Valable du", "Valable au", "Référence du document"],
            ["structure", "Maison départementale des solidarités", "", "", ""],
            [
                "convention",
                "Maison départementale des solidarités",
                date(2024, 3, 1),
                date(2028, 2, 29),
                "MDS-2024",
            ],
        ]
    )
    sheet_import.import_file(
        session=session, clsm_id=_id(clsm), filename="annuaire.ods", content=content, actor=ACTOR
    )
    session.commit()
    [(convention, org)] = d.conventions(session, _id(clsm))
    assert org.name == "Maison départementale des solidarités"
    assert (convention.starts_on, convention.ends_on) == (date(2024, 3, 1), date(2028, 2, 29))
    assert convention.document_ref == "MDS-2024"


def test_factories_structures_keep_working_with_the_directory(session: Session) -> None:
    owner = factories.clsm(session)
    org = factories.organisation(session, owner, "Structure ancienne")
    assert org.active and org.aliases == [] and org.version == 1


def test_a_coordinators_own_xlsx_reads_right(session: Session, clsm: Clsm) -> None:
    """Headers as people write them (case, synonyms), real date cells, a number as rank."""
    from openpyxl import Workbook

    book = Workbook()
    table = book.active
    assert table is not None
    table.append(["TYPE", "structure", "Membre permanent", "Rang de rotation", "Nom", "E-mail",
                  "Valide du", "Valide au"])  # fmt: skip
    table.append(["Structure", "Gendarmerie de Bressuire", "x", 3, None, None, None, None])
    table.append(["Contact", "gendarmerie de bressuire", None, None, "Adjudant Morel",
                  "MOREL@gendarmerie.example", None, None])  # fmt: skip
    table.append(["Convention", "Gendarmerie de Bressuire", None, None, None, None,
                  datetime(2025, 9, 1), date(2029, 8, 31)])  # fmt: skip
    buffer = io.BytesIO()
    book.save(buffer)
    sheet_import.import_file(
        session=session,
        clsm_id=_id(clsm),
        filename="Annuaire réseau.XLSX",
        content=buffer.getvalue(),
        actor=ACTOR,
    )
    session.commit()
    [member] = d.cell_members(session, _id(clsm))
    assert (member.name, member.rotation_order) == ("Gendarmerie de Bressuire", 3)
    assert d.contact_by_email(session, _id(clsm), "morel@gendarmerie.example") is not None
    [(convention, _org)] = d.conventions(session, _id(clsm))
    assert (convention.starts_on, convention.ends_on) == (date(2025, 9, 1), date(2029, 8, 31))
    assert [
        o.name for o in valid_partners(session=session, clsm_id=_id(clsm), on=date(2026, 1, 5))
    ] == ["Gendarmerie de Bressuire"]
