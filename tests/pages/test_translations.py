"""The Simplified Chinese catalogs: every string translated, and the committed .mo compiled from the .po (a
fresh machine needs no msgfmt)."""

import gettext
import re
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES"


def po_entries(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    assert "#, fuzzy\nmsgid" not in text.split('msgid ""', 2)[-1], f"{path.name} has fuzzy entries"
    entries = {}
    pattern = r'^msgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)'
    for msgid, msgstr in re.findall(pattern, text, re.M):
        key, value = (
            "".join(re.findall(r'"(.*)"', part)).encode().decode("unicode_escape").encode("latin-1").decode()
            for part in (msgid, msgstr)
        )
        if key:
            entries[key] = value
    return entries


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_string_is_translated_and_compiled(domain):
    entries = po_entries(LOCALE / f"{domain}.po")
    assert entries, f"{domain}.po is empty"
    untranslated = [k for k, v in entries.items() if not v]
    assert not untranslated, untranslated
    with (LOCALE / f"{domain}.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)
    stale = [k for k, v in entries.items() if catalog.gettext(k) != v]
    assert not stale, f"{domain}.mo is older than {domain}.po: run compilemessages ({stale[:3]})"
