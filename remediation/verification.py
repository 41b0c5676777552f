"""Did the fix work? The verdict on a run from what was observed since it was applied.

A run is **verified** when, on ``settle`` observations in a row, none of the records it
changed still violates the SLO, the regression guard's re-scan finds every change still in
place, and no page-severity alert of the incident fires (a burn-rate page fires while both
its windows burn at or over the page factor, so none firing means the burn fell under
it). It **fails** when the verification window ends first; the caller then rolls back.
Time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from revleak.remediation.model import Frozen


class Verdict(StrEnum):
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


class Observation(Frozen):
    at: datetime
    still_violating: frozenset[str] = frozenset()  # changed records still in the blast radius
    regressed: frozenset[str] = frozenset()  # changed records whose change is undone
    pages_firing: int = 0  # page-severity alerts of the incident still firing

    @property
    def healthy(self) -> bool:
        return not self.still_violating and not self.regressed and self.pages_firing == 0

    def describe(self) -> str:
        parts = []
        if self.still_violating:
            parts.append(f"{len(self.still_violating)} changed records still violate the SLO")
        if self.regressed:
            parts.append(f"{len(self.regressed)} changes were undone")
        if self.pages_firing:
            parts.append(f"{self.pages_firing} page alerts still fire")
        return "; ".join(parts) or "records fixed and burn under the page factor"


class VerificationPolicy(Frozen):
    window_s: float = 600.0  # how long the SLO may take to recover
    settle: int = 2  # healthy observations in a row before the verdict


def assess(
    policy: VerificationPolicy,
    applied_at: datetime,
    observations: Sequence[Observation],
    now: datetime,
) -> tuple[Verdict, str]:
    """The verdict and its reason, from the observations so far (oldest first)."""
    recent = observations[-policy.settle :] if policy.settle else []
    if len(recent) >= policy.settle and all(seen.healthy for seen in recent):
        return Verdict.VERIFIED, recent[-1].describe()
    if now >= applied_at + timedelta(seconds=policy.window_s):
        reason = observations[-1].describe() if observations else "nothing was observed"
        return Verdict.FAILED, f"not recovered within {policy.window_s:g} s: {reason}"
    return Verdict.PENDING, observations[-1].describe() if observations else "waiting"
