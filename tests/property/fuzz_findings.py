"""What a whole-pipeline fuzz run found: crashes (a contract break of the RPC or an unexpected exception of the
service) by where they raise, and wrong "yes" results by reason. A run keeps going after a finding, so one run
lists every distinct problem; the test then fails with all unknown ones, or is marked xfail while only crashes
listed in `KNOWN_CRASHES` (being fixed elsewhere) occur. `VERIFIER_FUZZ_REPORT=FILE` appends every first
occurrence with its full reproducer (evidence and collateral as hex, the server traceback) to FILE."""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass, field

import pytest

# Substring of a crash's origin ("path:line in function: exception type: message") -> what it is. Remove an entry
# once its fix has landed; an entry that matches nothing is simply not reported.
KNOWN_CRASHES: dict[str, str] = {}


@dataclass
class Finding:
    kind: str  # "crash" or "wrong yes"
    key: str  # the crash origin, or the wrong-yes reason
    reproducer: str
    detail: str = ""


@dataclass
class Findings:
    seen: dict[str, Finding] = field(default_factory=dict)
    count: int = 0

    def crash(self, origin: str, reproducer: str, traceback: str) -> None:
        self._add(Finding("crash", origin, reproducer, traceback))

    def wrong_yes(self, reason: str, reproducer: str, detail: str = "") -> None:
        self._add(Finding("wrong yes", reason, reproducer, detail))

    def _add(self, finding: Finding) -> None:
        self.count += 1
        key = f"{finding.kind}: {re.sub(r'(?<![:A-Za-z_])[0-9]+(?![0-9]* in )', 'N', finding.key)}"
        if key in self.seen:
            return
        self.seen[key] = finding
        report = os.environ.get("VERIFIER_FUZZ_REPORT")
        if report:
            with open(report, "a", encoding="utf-8") as out:
                out.write(f"=== {key}\n{finding.reproducer}\n{finding.detail}\n\n")

    def settle(self) -> None:
        """Fail on unknown findings (all of them listed), xfail on known crashes only, pass otherwise."""
        found, self.seen = self.seen, {}
        unknown = [f for f in found.values() if f.kind != "crash" or _known(f.key) is None]
        if unknown:
            listing = "\n\n".join(
                f"{f.kind.upper()} {f.key}\n  reproducer: {f.reproducer}\n{f.detail[-3000:]}" for f in unknown
            )
            pytest.fail(f"{len(unknown)} distinct problem(s):\n\n{listing}", pytrace=False)
        if found:
            names = sorted({str(_known(f.key)) for f in found.values()})
            pytest.xfail(f"known crashes still present: {'; '.join(names)}")


def _known(origin: str) -> str | None:
    return next((what for pattern, what in KNOWN_CRASHES.items() if pattern in origin), None)


def compact(error: BaseException) -> str:
    """The traceback of `error` and of its causes, reduced to the frames in verifier/ code and the exceptions."""
    lines: list[str] = []
    current: BaseException | None = error
    while current is not None:
        for frame in traceback.extract_tb(current.__traceback__):
            if "/verifier/" in frame.filename:
                lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}: {frame.line}')
        lines.append(f"{type(current).__module__}.{type(current).__qualname__}: {str(current)[:500]}")
        current = current.__cause__ or current.__context__
        if current is not None:
            lines.append("caused by / while handling:")
    return "\n".join(lines)


def origin(error: BaseException) -> str:
    """Where an exception raised: the innermost frame in verifier/ code outside the gRPC transport, as
    `path:line in function`, then the exception type and the first line of its message."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = (
        [f for f in frames if "/verifier/" in f.filename and "/transport/grpc/" not in f.filename]
        or [f for f in frames if "/verifier/" in f.filename]
        or frames
    )
    where = f"{ours[-1].filename.split('/work/main/')[-1]}:{ours[-1].lineno} in {ours[-1].name}" if ours else "?"
    message = (str(error).strip().splitlines() or [""])[0][:160]
    return f"{where}: {type(error).__module__}.{type(error).__qualname__}: {message}"
