"""CRM message formats: which decoder a message needs, and what it decodes into.

A message can carry several changes (a Salesforce change event for many
records, a HubSpot webhook batch) and be partly bad, so every decoder returns
the change events it could read and a dead letter for each part it could not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial

from revleak import deadletter
from revleak.connectors import hubspot, salesforce_cdc
from revleak.connectors.generic_json import decode_change
from revleak.connectors.mapping import SourceMapping
from revleak.connectors.messages import NOTHING, Decoded, Decoder, Position
from revleak.crm.events import ChangeEvent


class Format(StrEnum):
    GENERIC = "generic"
    SALESFORCE = "salesforce"  # Change Data Capture events (connectors/salesforce_cdc.py)
    HUBSPOT = "hubspot"  # webhook batches (connectors/hubspot.py)
    AUTO = "auto"  # detected per message


def decode_generic(raw: bytes, position: Position) -> Decoded:
    decoded = decode_change(
        raw,
        partition=position.partition,
        offset=position.offset,
        source=position.source,
        line_numbered=position.line_numbered,
    )
    if decoded is None:
        return NOTHING
    if isinstance(decoded, ChangeEvent):
        return Decoded([decoded], [])
    return Decoded([], [decoded])


_SALESFORCE_KEY = re.compile(rb'"ChangeEventHeader"\s*:')
_HUBSPOT_KEY = re.compile(rb'"subscriptionType"\s*:')


def sniff(raw: bytes) -> Format | None:
    """The format of a message from its first bytes and keys, without parsing it.

    A JSON array is a HubSpot webhook batch; an object with a ``ChangeEventHeader``
    is a Salesforce change event, one with a ``subscriptionType`` a single HubSpot
    webhook event, and any other object a generic change event.
    """
    head = raw.lstrip()[:1]
    if head == b"[":
        return Format.HUBSPOT
    if head == b"{":
        if _SALESFORCE_KEY.search(raw):
            return Format.SALESFORCE
        if _HUBSPOT_KEY.search(raw):
            return Format.HUBSPOT
        return Format.GENERIC
    return None


def decoder_for(fmt: Format, mappings: Sequence[SourceMapping] = ()) -> Decoder:
    """The decoder of ``fmt``; vendor formats use the mapping given for them, else the bundled."""
    if not mappings:
        return _BUNDLED[fmt]
    sources = {mapping.spec.source for mapping in mappings}
    unused = sources - ({fmt.value} if fmt is not Format.AUTO else {v.value for v in _VENDORS})
    if unused:
        source = sorted(unused)[0]
        raise ValueError(f"a {source} mapping is for --format {source} or auto, not {fmt.value}")
    return _decoders(mappings)[fmt]


def _decoders(mappings: Sequence[SourceMapping]) -> dict[Format, Decoder]:
    by_source: dict[str, SourceMapping] = {mapping.spec.source: mapping for mapping in mappings}
    decoders: dict[Format, Decoder] = {Format.GENERIC: decode_generic}
    for vendor, decode in _VENDORS.items():
        mapping = by_source.get(vendor.value)
        decoders[vendor] = partial(decode, mapping=mapping) if mapping else decode

    def decode_auto(raw: bytes, position: Position) -> Decoded:
        if not raw.strip():
            return NOTHING
        found = sniff(raw)
        if found is None:
            detail = "not a known CRM message"
            return Decoded([], [position.dead_letter(raw, deadletter.UNKNOWN_FORMAT, detail)])
        return decoders[found](raw, position)

    decoders[Format.AUTO] = decode_auto
    return decoders


_VENDORS: dict[Format, Callable[..., Decoded]] = {
    Format.SALESFORCE: salesforce_cdc.decode_salesforce,
    Format.HUBSPOT: hubspot.decode_hubspot,
}
_BUNDLED = _decoders(())
