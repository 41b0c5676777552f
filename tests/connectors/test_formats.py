"""revleak.connectors.formats: each message's format, detected from its first bytes and keys."""

from __future__ import annotations

import json

import pytest
from harness import ROOT

from revleak.connectors.formats import Format, decoder_for, sniff
from revleak.connectors.mapping import default_mapping
from revleak.connectors.messages import Position

VENDORS = ROOT / "tests" / "data" / "vendors"
GENERIC = (
    b'{"event_id": "e1", "ts": "2026-03-02T10:00:00Z", "object": "lead", "op": "create", '
    b'"record_id": "L1"}'
)


def test_sniff_tells_the_formats_apart() -> None:
    salesforce = (VENDORS / "salesforce-cdc.jsonl").read_bytes().splitlines()
    hubspot = (VENDORS / "hubspot-webhooks.jsonl").read_bytes().splitlines()
    assert {sniff(line) for line in salesforce} == {Format.SALESFORCE}  # all three shapes
    assert {sniff(line) for line in hubspot} == {Format.HUBSPOT}  # arrays and one object
    assert sniff(GENERIC) is Format.GENERIC
    assert sniff(b'  \t{"ChangeEventHeader" : {}}') is Format.SALESFORCE
    assert sniff(b"[]") is Format.HUBSPOT
    assert sniff(b'{"subscriptionType": "deal.deletion"}') is Format.HUBSPOT
    # A key's name inside a text value is not a key.
    quoted = json.dumps({"event_id": "e1", "fields": {"name": '"ChangeEventHeader": x'}})
    assert sniff(quoted.encode()) is Format.GENERIC
    assert sniff(b"lead,L1") is None
    assert sniff(b"") is None


def test_auto_decodes_each_message_with_its_format() -> None:
    position = Position("crm", 0, 3)
    lines = [
        GENERIC,
        (VENDORS / "salesforce-cdc.jsonl").read_bytes().splitlines()[0],
        (VENDORS / "hubspot-webhooks.jsonl").read_bytes().splitlines()[0],
    ]
    for line, fmt in zip(lines, (Format.GENERIC, Format.SALESFORCE, Format.HUBSPOT), strict=True):
        decoded = decoder_for(Format.AUTO)(line, position)
        assert decoded == decoder_for(fmt)(line, position)
        assert decoded.events
    (letter,) = decoder_for(Format.AUTO)(b"lead,L1", position).dead_letters
    assert letter.reason == "unknown_format"


def test_formats_have_their_command_line_names() -> None:
    assert [fmt.value for fmt in Format] == ["generic", "salesforce", "hubspot", "auto"]
    for fmt in Format:
        assert decoder_for(fmt) is decoder_for(Format(fmt.value))


def test_a_mapping_applies_to_its_own_format_only() -> None:
    mapping = default_mapping("hubspot")
    assert decoder_for(Format.HUBSPOT, [mapping]) is not None
    assert decoder_for(Format.AUTO, [mapping]) is not None
    with pytest.raises(ValueError, match="hubspot mapping is for --format hubspot or auto"):
        decoder_for(Format.SALESFORCE, [mapping])
