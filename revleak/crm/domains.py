"""The duplicate rule's index: open records by object and company domain.

A record is a DUPLICATE_SUSPECT when another open record of the same object
with the same company domain was created earlier (``created_at``, then
``record_id``). The index is partitioned by domain, so each partition sees
every record that could be a duplicate of another; it annotates each
:class:`~revleak.crm.quality.QualityCheck` with a
:class:`~revleak.crm.quality.DuplicateVerdict`, and remembers whether each
member's duplicate violation is open.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from revleak.crm.events import CrmObject
from revleak.crm.quality import DuplicateVerdict, Half, QualityCheck


def index_key(obj: CrmObject, domain: str) -> str:
    return f"{obj.value}@{domain}"


def routes(check: QualityCheck) -> list[tuple[str, Half]]:
    """The index partitions that must see ``check``, by routing key.

    A record without a company domain still passes through the index (keyed by
    itself) so that every check reaches the SLO the same way.
    """
    if check.splits:
        assert check.domain_before is not None
        assert check.domain_after is not None
        return [
            (index_key(check.object, check.domain_before), Half.LEAVE),
            (index_key(check.object, check.domain_after), Half.JOIN),
        ]
    if check.open_after and check.domain_after is not None:
        return [(index_key(check.object, check.domain_after), Half.WHOLE)]
    if check.domain_before is not None:
        return [(index_key(check.object, check.domain_before), Half.WHOLE)]
    return [(f"record:{check.record_id}", Half.WHOLE)]


class DomainIndex:
    """One partition of the index.

    A member is one ``bytes``: its ``created_at`` (8 bytes, big-endian, offset to be
    unsigned) then its record id in UTF-8, so byte order is (created_at, record_id) order.
    A domain with one member (the common case) holds that ``bytes``; a larger one a sorted
    list. Open duplicate violations are rare and kept apart.
    """

    def __init__(self) -> None:
        self._domains: dict[str, bytes | list[bytes]] = {}
        self._flagged: set[tuple[str, str]] = set()

    @property
    def members(self) -> int:
        return sum(1 if isinstance(m, bytes) else len(m) for m in self._domains.values())

    def advance(self, requests: Iterable[tuple[QualityCheck, Half]]) -> list[DuplicateVerdict]:
        """Answer checks in event-time order."""
        return [self._answer(check, half) for check, half in requests]

    def _answer(self, check: QualityCheck, half: Half) -> DuplicateVerdict:
        before_key = index_key(check.object, check.domain_before) if check.domain_before else None
        after_key = (
            index_key(check.object, check.domain_after)
            if check.domain_after and check.open_after
            else None
        )
        created_before = check.created_at_before_ms
        before = _member(
            check.created_at_ms if created_before is None else created_before, check.record_id
        )
        if half is Half.LEAVE:
            assert before_key is not None
            return DuplicateVerdict(check, half, self._remove(before_key, before), False)
        duplicate_before = False
        if half is Half.WHOLE and before_key is not None:
            duplicate_before = self._remove(before_key, before)
        duplicate_after = False
        if after_key is not None:
            member = _member(check.created_at_ms, check.record_id)
            duplicate_after = self._place(after_key, member)
            if duplicate_after:
                self._flagged.add((after_key, check.record_id))
        return DuplicateVerdict(check, half, duplicate_before, duplicate_after)

    def _remove(self, key: str, member: bytes) -> bool:
        """Take ``member`` out of ``key``'s domain; say whether it was flagged a duplicate."""
        members = self._domains.get(key)
        if members is None:
            return False
        if isinstance(members, bytes):
            if members == member:
                del self._domains[key]
        else:
            position = bisect_left(members, member)
            if position < len(members) and members[position] == member:
                del members[position]
                if len(members) == 1:
                    self._domains[key] = members[0]
        record_id = member[8:].decode()
        if (key, record_id) in self._flagged:
            self._flagged.discard((key, record_id))
            return True
        return False

    def _place(self, key: str, member: bytes) -> bool:
        """Add ``member``; say whether an earlier open record shares the domain."""
        members = self._domains.get(key)
        if members is None:
            self._domains[key] = member
            return False
        if isinstance(members, bytes):
            members = self._domains[key] = [members]
        insort(members, member)
        return members[0] != member


def _member(created_at_ms: int, record_id: str) -> bytes:
    return (created_at_ms + _OFFSET).to_bytes(8, "big") + record_id.encode()


_OFFSET = 1 << 63  # created_at may precede 1970: keep the packed value unsigned
