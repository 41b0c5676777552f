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

from collections.abc import Iterable

from revleak.crm.events import CrmObject
from revleak.crm.quality import DuplicateVerdict, Half, QualityCheck

# A member: (created_at_ms, record_id) orders "created earlier"; the flag says whether its
# duplicate violation is open.
_Member = tuple[int, str, bool]


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
    def __init__(self) -> None:
        self._domains: dict[str, list[_Member]] = {}

    @property
    def members(self) -> int:
        return sum(len(members) for members in self._domains.values())

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
        if half is Half.LEAVE:
            assert before_key is not None
            return DuplicateVerdict(check, half, self._remove(before_key, check.record_id), False)
        duplicate_before = False
        if half is Half.WHOLE and before_key is not None:
            if before_key == after_key:
                duplicate_before = self._flag(before_key, check.record_id)
            else:
                duplicate_before = self._remove(before_key, check.record_id)
        duplicate_after = False
        if after_key is not None:
            duplicate_after = self._place(after_key, check.record_id, check.created_at_ms)
        return DuplicateVerdict(check, half, duplicate_before, duplicate_after)

    def _flag(self, key: str, record_id: str) -> bool:
        for _, member_id, flagged in self._domains.get(key, ()):
            if member_id == record_id:
                return flagged
        return False

    def _remove(self, key: str, record_id: str) -> bool:
        members = self._domains.get(key)
        if not members:
            return False
        for position, (_, member_id, flagged) in enumerate(members):
            if member_id == record_id:
                del members[position]
                if not members:
                    del self._domains[key]
                return flagged
        return False

    def _place(self, key: str, record_id: str, created_at_ms: int) -> bool:
        """Insert or move ``record_id`` and say whether an earlier open record shares the domain."""
        members = self._domains.setdefault(key, [])
        members[:] = [member for member in members if member[1] != record_id]
        duplicate = any(
            (created, member_id) < (created_at_ms, record_id) for created, member_id, _ in members
        )
        members.append((created_at_ms, record_id, duplicate))
        return duplicate
