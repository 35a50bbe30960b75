"""The network directory of a CLSM: structures, contacts, conventions, cell, orientation
catalogue and past yearly totals.

Every change goes through one function here that checks the version read with the page
(optimistic locking), writes the row and records the change, before → after, on the CLSM's
own audit chain (`CaseType.CLSM`, case id = the CLSM's id) in the same transaction.
Nothing a case may refer to is ever deleted: structures, contacts and orientations are
deactivated (retired), and keep their history.

Functions other modules call: `match_structure` (a typed structure name against the
directory), `orientation_catalogue` (the CLSM's current orientations), `past_totals`
(yearly totals of the years before the product).

This package's public names are importable from here; the spreadsheet (import, export)
is in `sheet`, `sheet_import` and `sheet_export`.
"""

from models.core.directory.clsm import clsm_by_slug, create_clsm, update_clsm
from models.core.directory.contact import (
    contact_by_email,
    contacts,
    create_contact,
    get_contact,
    set_contact_active,
    update_contact,
)
from models.core.directory.convention import (
    conventions,
    create_convention,
    expiring_conventions,
    get_convention,
    update_convention,
)
from models.core.directory.fields import (
    DEFAULT_ORIENTATIONS,
    EXPIRY_MAIL_DAYS,
    EXPIRY_WARNING_DAYS,
    KIND_LABELS,
    ROLE_LABELS,
    ClsmCreate,
    ClsmSettings,
    ContactCreate,
    ContactRole,
    ConventionCreate,
    OrientationCreate,
    PastTotalsCreate,
    StructureCreate,
    StructureKind,
)
from models.core.directory.matching import (
    NEAR_RATIO,
    NearDuplicate,
    StructureMatch,
    fold,
    match_among,
    match_structure,
)
from models.core.directory.orientation import (
    add_orientation,
    get_orientation,
    orientation_catalogue,
    rename_orientation,
    set_orientation_active,
)
from models.core.directory.reminders import (
    DIRECTORY_MAILS,
    ConventionExpiringMail,
    queue_convention_reminders,
)
from models.core.directory.structure import (
    cell_members,
    create_structure,
    get_structure,
    set_structure_active,
    structures,
    update_structure,
)
from models.core.directory.tables import OrientationEntry, PastTotals
from models.core.directory.totals import past_totals, set_past_totals

__all__ = [
    "DEFAULT_ORIENTATIONS",
    "DIRECTORY_MAILS",
    "EXPIRY_MAIL_DAYS",
    "EXPIRY_WARNING_DAYS",
    "KIND_LABELS",
    "NEAR_RATIO",
    "ROLE_LABELS",
    "ClsmCreate",
    "ClsmSettings",
    "ContactCreate",
    "ContactRole",
    "ConventionCreate",
    "ConventionExpiringMail",
    "NearDuplicate",
    "OrientationCreate",
    "OrientationEntry",
    "PastTotals",
    "PastTotalsCreate",
    "StructureCreate",
    "StructureKind",
    "StructureMatch",
    "add_orientation",
    "cell_members",
    "clsm_by_slug",
    "contact_by_email",
    "contacts",
    "conventions",
    "create_clsm",
    "create_contact",
    "create_convention",
    "create_structure",
    "expiring_conventions",
    "fold",
    "get_contact",
    "get_convention",
    "get_orientation",
    "get_structure",
    "match_among",
    "match_structure",
    "orientation_catalogue",
    "past_totals",
    "queue_convention_reminders",
    "rename_orientation",
    "set_contact_active",
    "set_orientation_active",
    "set_past_totals",
    "set_structure_active",
    "structures",
    "update_clsm",
    "update_contact",
    "update_convention",
    "update_structure",
]
