"""``raysweep verify RUN``: check what a run's records rest on before trusting it.

Every ``ok`` record's per-item side file (``items/<trial_id>.json``) and every dense baseline its
records name (the sweep's copy ``dense/<key>.json`` and its side file ``items/dense-<key>.json``)
must exist, parse, follow the format and average to the scores: a trial's items to its record's
task scores, the dense items to the copy's (:func:`raysweep.items.check_side_file`,
:func:`raysweep.dense.check_sweep_copy`). The sweep driver runs the same check on every rerun:
a grid point (or a confirmation) whose side file is broken is scored again, a broken dense
baseline is computed again, and what it cannot repair (a search trial: its study holds it) is
named. Plain Python: JSON files only, no Ray, torch or lm-eval.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.dense import SWEEP_DIR, check_sweep_copy, read_baseline
from raysweep.items import ITEMS_DIR, check_side_file, check_trial_file, dense_items_path
from raysweep.records import RECORDS_FILE, TrialRecord, latest_per_trial, read_records


@dataclass
class Verification:
    """What :func:`verify_run` found: each broken file once, with why."""

    checked: int = 0  # side files and dense copies looked at
    records: int = 0  # ok records
    trials: dict[str, str] = field(default_factory=dict)  # trial_id -> why its side file is bad
    dense: dict[str, str] = field(default_factory=dict)  # dense key -> why (copy or side file)
    lines: list[str] = field(default_factory=list)  # one per broken file
    # A run recorded before side files were kept (no items/ folder at all): nothing to check,
    # and nothing is scored again for it; its paired statistics are unavailable.
    legacy: bool = False

    @property
    def sound(self) -> bool:
        return not (self.trials or self.dense)

    def report(self) -> list[str]:
        """The console's lines: one, or a head line and one per broken file."""
        head = f"[raysweep] verify: {self.checked} files of {self.records} ok records checked"
        if self.legacy:
            return [f"[raysweep] verify: {self.records} ok records written before per-item side "
                    f"files were kept (no {ITEMS_DIR}/ folder): not checked, not scored again; "
                    "paired statistics are unavailable for them"]  # fmt: skip
        if self.sound:
            return [f"{head}: all sound"]
        return [f"{head}, {len(self.lines)} broken (paired statistics leave them out until "
                "repaired):", *self.lines]  # fmt: skip


def _label(record: TrialRecord) -> str:
    from raysweep.config import TrialConfig

    try:
        return TrialConfig.model_validate(record.config).label
    except ValueError:  # a record of an older schema
        return record.mix_name


def verify_run(out: str | Path) -> Verification:
    """Check the side files and dense baselines of every ok record in ``out``."""
    out = Path(out)
    found = Verification()
    latest = latest_per_trial(read_records(out / RECORDS_FILE, warn=False).records)
    ok = [r for r in latest.values() if r.status == "ok"]
    found.records = len(ok)
    if ok and not (out / ITEMS_DIR).is_dir():
        found.legacy = True
        return found
    for record in ok:
        found.checked += 1
        why = check_trial_file(out, record)
        if why:
            found.trials[record.trial_id] = why
            found.lines.append(f"[raysweep]   {ITEMS_DIR}/{record.trial_id}.json "
                               f"({_label(record)}, {record.phase}): {why}")  # fmt: skip
    for key in dict.fromkeys(r.dense_cache_key for r in ok if r.dense_cache_key):
        found.checked += 2
        why = check_sweep_copy(out, key)
        if why:
            found.dense[key] = why
            found.lines.append(f"[raysweep]   {SWEEP_DIR}/{key}.json: {why}")
        # The dense side file is written from the copy; with no sound copy, from the records'.
        copy = None if why else read_baseline(key, out / SWEEP_DIR)
        scores = next(r.dense_task_scores for r in ok if r.dense_cache_key == key)
        path = dense_items_path(out, key)
        why = check_side_file(path, copy.scores.task_scores if copy else scores, dense_key=key)
        if why:
            found.dense.setdefault(key, why)
            found.lines.append(f"[raysweep]   {ITEMS_DIR}/{path.name}: {why}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="raysweep verify",
        description="Check a run's per-item side files and dense baselines against its records; "
        "exit 1 when one is missing or corrupt (a rerun of the sweep repairs what it can).",
    )
    p.add_argument("run", metavar="RUN", help="a run's output directory")
    args = p.parse_args(argv)
    if not (Path(args.run) / RECORDS_FILE).is_file():
        print(f"error: {args.run!r} holds no {RECORDS_FILE}", file=sys.stderr)
        return 2
    found = verify_run(args.run)
    for line in found.report():
        print(line, flush=True)
    return 0 if found.sound else 1


if __name__ == "__main__":
    raise SystemExit(main())
