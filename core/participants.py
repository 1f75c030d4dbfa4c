"""Who is in the meeting and whose audio the agent hears (the listen policy)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MIX, FIRST = "mix", "first"


@dataclass
class Participant:
    id: str
    name: str | None
    joined_at: float = field(default_factory=time.monotonic)
    #: Sum of squared samples heard since the current user turn began (for attribution).
    turn_energy: float = 0.0
    #: Recent loudness (a moving average of frame energy), to name who starts speaking.
    level: float = 0.0
    #: A phone caller (dial-in, dial-out or SIP leg), and their number when known.
    phone: bool = False
    number: str | None = None


class Roster:
    """Participant bookkeeping plus the listen policy.

    ``policy`` is ``"mix"`` (everyone), ``"first"`` (the earliest participant still present)
    or a display name (matched case-insensitively). The bot itself is never a participant:
    the transport reports its id and the roster ignores it."""

    def __init__(self, policy: str = MIX) -> None:
        self.policy = policy
        self.bot_id: str | None = None
        self._people: dict[str, Participant] = {}
        # Who left during the current turn: their words may still be transcribed.
        self._departed: dict[str, Participant] = {}
        self._warned_unmatched = False

    def __len__(self) -> int:
        return len(self._people)

    def __contains__(self, pid: object) -> bool:
        return pid in self._people

    def get(self, pid: str) -> Participant | None:
        return self._people.get(pid)

    @property
    def people(self) -> list[Participant]:
        return list(self._people.values())

    def join(self, pid: str, name: str | None) -> Participant | None:
        """Add a participant; returns it, or ``None`` for the bot itself or a repeat."""
        if pid == self.bot_id:
            return None
        if pid in self._people:
            self.update(pid, name)
            return None
        p = Participant(pid, name)
        self._people[pid] = p
        return p

    def update(self, pid: str, name: str | None) -> None:
        p = self._people.get(pid)
        if p is not None and name:
            p.name = name

    def leave(self, pid: str) -> Participant | None:
        p = self._people.pop(pid, None)
        if p is not None:
            self._departed[pid] = p
        return p

    def listened(self) -> set[str]:
        """Ids whose audio reaches the agent under the policy."""
        if self.policy == MIX:
            return set(self._people)
        if self.policy == FIRST:
            if not self._people:
                return set()
            first = min(self._people.values(), key=lambda p: p.joined_at)
            return {first.id}
        wanted = self.policy.casefold()
        return {p.id for p in self._people.values() if (p.name or "").casefold() == wanted}

    def unmatched_listen(self) -> str | None:
        """A warning, the first time it applies in a call: the policy names someone, people
        are present and none of them has that name (so the agent hears nobody)."""
        if self._warned_unmatched or self.policy in (MIX, FIRST) or not self._people:
            return None
        if self.listened():
            return None
        self._warned_unmatched = True
        present = [p.name or p.id for p in self._people.values()]
        shown = ", ".join(repr(n[:60]) for n in present[:10])
        more = f" and {len(present) - 10} more" if len(present) > 10 else ""
        return (
            f"[bridge] listen = {self.policy[:60]!r}, but nobody in the call has that name "
            f"(present: {shown}{more}): the agent hears no one until that person joins "
            '(listen = "mix" hears everyone)'
        )

    def reset_turn(self) -> None:
        self._departed.clear()
        for p in self._people.values():
            p.turn_energy = 0.0

    def hear(self, levels: list[tuple[str, float]], in_turn: bool) -> None:
        """Account frames of people's audio: ``(pid, its sum of squares)`` each, in order."""
        people, departed = self._people, self._departed
        for pid, energy in levels:
            p = people.get(pid) or departed.get(pid)  # frames sent before leaving
            if p is not None:
                p.level = 0.7 * p.level + 0.3 * energy
                if in_turn:
                    p.turn_energy += energy

    def speaking_now(self, among: set[str]) -> Participant | None:
        """Who of ``among`` is loudest right now."""
        best = max(
            (self._people[i] for i in among if i in self._people),
            key=lambda p: p.level,
            default=None,
        )
        return best if best is not None and best.level > 0 else None

    def loudest(self) -> Participant | None:
        """The participant who spoke most during the current turn (transcript attribution),
        including someone who has left since: a caller's last words arrive after hang-up."""
        everyone = [*self._people.values(), *self._departed.values()]
        best = max(everyone, key=lambda p: p.turn_energy, default=None)
        if best is None or best.turn_energy <= 0:
            return None
        return best
