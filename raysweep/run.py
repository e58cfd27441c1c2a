"""``python -m raysweep.run``: validate a sweep config, run it on Ray Tune, write records and a report.

Output layout under ``output_dir``: ``config.yaml`` (resolved), ``records.jsonl`` (one line per
finished trial), ``items/`` (per-item scores, :mod:`raysweep.items`), ``dense/`` (dense baseline), ``tune/`` (Tune experiments), ``search/``, ``report/``.
Rerunning the same command resumes: points that already have an ``ok`` record are skipped, once
their side files and dense baseline pass :func:`raysweep.verify.verify_run` (a point whose side
file is broken is scored again, a broken dense baseline computed again).

A driver that joins a Ray cluster needs an absolute ``output_dir`` (see
:func:`check_output_location`): under ``ray job submit --working-dir`` a relative one would land
in Ray's per-job copy of the code and vanish with the job.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from raysweep.atomic import WriteError
from raysweep.config import ConfigError, SweepConfig, TrialConfig, load_config
from raysweep.dense import dense_key, sweep_baseline
from raysweep.orphans import reap_orphans, record_ray_processes
from raysweep.output import claim_output, place_new_config
from raysweep.preflight import preflight
from raysweep.records import RECORDS_FILE, finished_ids, latest_records
from raysweep.verify import verify_run

_PASS_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
             "RAYSWEEP_CACHE_DIR", "HF_TOKEN", "TOKENIZERS_PARALLELISM")  # fmt: skip
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Set in the driver of a Ray job (``ray job submit``) or by a user who points it at a cluster.
_CLUSTER_ENV = ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_JOB_ID")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raysweep.run",
        description="Sweep calibration sources and mixes x sparsities x pruning methods on Ray Tune; "
        "score every pruned model per capability dimension against the dense model.",
    )
    p.add_argument("--config", help="sweep YAML (default: the embedded toy-world sweep)")
    p.add_argument("--output", help="output directory (overrides output_dir)")
    p.add_argument("--smoke-test", action="store_true", help="a tiny version of the sweep")
    p.add_argument("--resume", action="store_true",
                   help="require an existing run in the output directory and continue it "
                   "(rerunning without --resume continues it too)")  # fmt: skip
    p.add_argument("--mode", choices=("all", "grid", "search"), default="all",
                   help="grid only, search only, or grid then search (default)")  # fmt: skip
    p.add_argument("--new-config", action="store_true",
                   help="the output directory holds a run of another config and this change is "
                   "meant: run apart in its sub-run <output>/config-<fingerprint>/")  # fmt: skip
    p.add_argument("--validate", action="store_true", help="validate, print the plan, exit")
    p.add_argument("--debug", action="store_true",
                   help="print the traceback of a configuration error too")  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    return p


def joins_cluster(cfg: SweepConfig, environ: Mapping[str, str], cwd: str | Path) -> str | None:
    """Why this driver counts as joining a Ray cluster (a phrase for messages), or None."""
    if cfg.ray.address:
        return f"ray.address is {cfg.ray.address!r}"
    for var in _CLUSTER_ENV:
        if environ.get(var):
            return f"{var} is set"
    # A job's working directory is unpacked to <ray temp>/session_*/runtime_resources/...
    parts = Path(cwd).parts
    if "runtime_resources" in parts and any(p.startswith("session_") for p in parts):
        return f"the working directory {str(cwd)!r} is inside a Ray session"
    return None


def check_output_location(
    cfg: SweepConfig, environ: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> None:
    """Refuse relative output paths in a driver that joins a Ray cluster (raises ConfigError).

    Under ``ray job submit --working-dir .`` the driver's working directory is Ray's unpacked,
    content-hashed copy of the code, deleted with the job and moved by any code change: a
    relative ``output_dir`` (records, ``search/optuna.db``, the report) or ``ray.storage_path``
    would resolve there and neither survive the job nor be found by a resumed run.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    why = joins_cluster(cfg, environ, cwd)
    if why is None:
        return
    paths = {"output_dir": cfg.output_dir, "ray.storage_path": cfg.ray.storage_path}
    bad = [
        f"  {name}: {value!r} is relative: it would resolve under {str(cwd)!r}, which does not "
        "outlive a Ray job (under --working-dir it is Ray's per-job copy of the code)"
        for name, value in paths.items()
        if value is not None and "://" not in value and not Path(value).is_absolute()
    ]
    if bad:
        raise ConfigError(
            f"relative output path in a driver that joins a Ray cluster ({why}):\n"
            + "\n".join(bad)
            + "\n  allowed: an absolute path on persistent or shared storage, e.g. "
            "--output /home/ray/runs/study (ray.storage_path may also be a URI, s3://...)"
        )


def resolve(args: argparse.Namespace) -> SweepConfig:
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"output_dir={args.output}")
    cfg = load_config(args.config, overrides)
    if args.smoke_test:
        from raysweep.planning import smoke_config

        cfg = smoke_config(cfg, own_output=not args.output)
    check_output_location(cfg)
    if args.new_config:
        cfg, placed = place_new_config(cfg)
        if placed:
            print(f"[raysweep] {placed}", flush=True)
    if args.mode == "search" and cfg.search is None:
        raise ConfigError("--mode search: the config has no 'search' section")
    if args.resume and not (Path(cfg.output_dir) / RECORDS_FILE).exists():
        raise ConfigError(f"--resume: {cfg.output_dir} holds no {RECORDS_FILE} to continue")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve(args)
        from raysweep.planning import search_plan, trial_points

        points = trial_points(cfg)
        searching = cfg.search is not None and args.mode in ("all", "search")
        plan = search_plan(cfg) if searching else None
    except ConfigError as exc:
        return _config_error(exc, args.debug)
    print("# resolved configuration\n" + cfg.to_yaml(), flush=True)
    grid_note = "" if args.mode in ("all", "grid") else " (not run: --mode search)"
    print(f"# {len(points)} grid points{grid_note}", flush=True)
    if plan:
        print(f"# {plan}", flush=True)
    on_cluster = joins_cluster(cfg, os.environ, Path.cwd()) is not None
    problems = preflight(cfg, on_cluster=on_cluster)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    if args.validate:
        return 0
    # Ctrl-C stops the driver here, not in Tune's handler, whose advice (Tuner.restore) does
    # not apply: records are appended as trials finish and the same command resumes.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        return run_sweep(cfg, points, mode=args.mode)
    except ConfigError as exc:
        return _config_error(exc, args.debug)
    except OSError as exc:
        if not isinstance(exc, WriteError) and exc.errno not in _DISK_FULL:
            raise
        where = exc.filename or "a file of the run"
        failure = exc if isinstance(exc, WriteError) else WriteError(where, exc)
        print(f"[raysweep] {failure}; what was written before is whole: make room and rerun the "
              "same command to resume", file=sys.stderr, flush=True)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        records = Path(cfg.output_dir).resolve() / RECORDS_FILE
        kept = len(finished_ids(records)) if records.exists() else 0
        print(f"\n[raysweep] interrupted: {kept} finished trial(s) kept in {records}; rerun "
              "the same command to resume", file=sys.stderr, flush=True)  # fmt: skip
        return 130


def _config_error(exc: ConfigError, debug: bool) -> int:
    """A user's mistake: one message, exit 2; the traceback only with ``--debug``."""
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr)
    return 2


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, a scheduler) ends the sweep like Ctrl-C. Installed after ray.init, whose
    own SIGTERM handler aborts the process; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- the sweep


def _reap(out: Path) -> None:
    """Stop what a dead driver of this output left of its Ray, and say so."""
    reaped = reap_orphans(out)
    if reaped:
        print(f"[raysweep] stopped {len(reaped)} Ray process(es) a dead driver of this output "
              f"left running: {', '.join(reaped)}", flush=True)  # fmt: skip


def start_ray(cfg: SweepConfig) -> bool:
    """Start (or join) Ray; True when this driver started a local Ray of its own."""
    import ray

    if ray.is_initialized():  # embedded use (tests, notebooks): join the running Ray
        return False
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    # A trial owns `resources.cpu` cores; thread pools beyond torch's must not oversubscribe them.
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("OMP_NUM_THREADS", str(cfg.resources.torch_threads))
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ctx = ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    else:
        ctx = ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=cfg.ray.dashboard,
                       runtime_env={"env_vars": env}, log_to_driver=False)  # fmt: skip
    url = getattr(ctx, "dashboard_url", None)
    print(dashboard_line(url, remote=bool(address), auth=os.environ.get("RAY_AUTH_MODE")),
          flush=True)  # fmt: skip
    return not address


def dashboard_line(url: str | None, *, remote: bool, auth: str | None) -> str:
    """Where the dashboard is and, when Ray asks for a token (``RAY_AUTH_MODE=token``, the
    default of a local ``ray.init`` since Ray 2.60), how to get past its login dialog."""
    if not url:
        return "[raysweep] Ray dashboard: off"
    line = f"[raysweep] Ray dashboard: http://{url}"
    if (auth or "").lower() != "token":
        return line
    where = (
        "the cluster's token: `ray exec cluster.yaml 'ray get-auth-token'` (or RAY_AUTH_TOKEN)"
        if remote
        else "the output of `ray get-auth-token` (read from ~/.ray/auth_token)"
    )
    return f"{line}\n[raysweep]   it asks for a token: paste {where}"


def run_sweep(cfg: SweepConfig, points: list[TrialConfig], mode: str = "all") -> int:
    """Run the sweep into ``cfg.output_dir``, which this driver owns meanwhile (ConfigError if
    another driver or another config owns it)."""
    with claim_output(cfg) as out:
        records = out / RECORDS_FILE
        storage = cfg.ray.storage_path or str(out / "tune")
        _reap(out)
        if start_ray(cfg):
            record_ray_processes(out)
        with _sigterm_as_interrupt():
            return _sweep(cfg, points, mode, out, records, storage)


def _sweep(cfg: SweepConfig, points: list[TrialConfig], mode: str, out: Path, records: Path,
           storage: str) -> int:  # fmt: skip
    """The grid, then the search, then the report; the summary's exit status."""
    grid, search = mode in ("all", "grid"), cfg.search is not None and mode in ("all", "search")
    check = verify_run(out)  # what the points skipped below rest on
    for line in check.report() if check.records else []:
        print(line, flush=True)
    if grid:
        from raysweep.trainables import compute_dense, run_grid

        done = finished_ids(records) - set(check.trials)
        todo = [p for p in points if p.trial_id not in done]
        redo = [p.trial_id for p in todo if p.trial_id in check.trials]
        why = "its side file is" if len(redo) == 1 else "their side files are"
        again = f" ({len(redo)} scored again: {why} broken)" if redo else ""
        print(f"[raysweep] grid: {len(points)} points, {len(points) - len(todo)} already "
              f"done, {len(todo)} to run{again}", flush=True)  # fmt: skip
        if todo or (points and dense_key(points[0].model, points[0].evaluation) in check.dense):
            dense = sweep_baseline((todo or points)[0], out, compute_dense)  # repairs a broken one
        if todo:
            outcome = run_grid(cfg, todo, dense, records, storage, redo=redo)
            print(f"[raysweep] grid finished in {outcome.wall_s:.0f}s: {outcome.ok} ok, "
                  f"{len(outcome.errors)} error", flush=True)  # fmt: skip
    failed = 0
    if search:
        from raysweep.search import run_search

        failed = sum(summary["failed_trials"] for summary in run_search(cfg, out, storage))
    reported = _report(out) if cfg.analysis else True
    if cfg.analysis and reported and cfg.tracking is not None:
        _track_report(cfg, out)
    status = _summary(points, records, grid=grid, search=search, search_failed=failed)
    return status if reported else max(status, 1)


def _report(out: Path) -> bool:
    """Write the report; False (one line on stderr) when it could not be written. The report's
    files are written atomically: a failure leaves the previous file or none, never half of one."""
    try:
        from analysis import write_report

        report = write_report(out)
        print(f"[raysweep] report: {report.report_md} (and report.html)", flush=True)
        return True
    except OSError as exc:  # a full disk, a read-only folder: say where and why, in one line
        failure = WriteError(exc.filename or out / "report", exc)
        print(f"[raysweep] analysis report failed: {failure}", file=sys.stderr, flush=True)
    except Exception as exc:  # the records are the product; a failed report must not hide them
        print(f"[raysweep] analysis report failed: {exc!r}", file=sys.stderr, flush=True)
    return False


def _track_report(cfg: SweepConfig, out: Path) -> None:
    """Log the report's files to the tracker; a tracker that fails is one line, the run's
    status is the records' (tracking is a side channel, as it is for the trials)."""
    from raysweep.tracking import log_report

    try:
        run_id = log_report(cfg, out, out / "report")
    except Exception as exc:  # noqa: BLE001 - any tracker failure: say it, go on
        print(f"[raysweep] tracking: the report was not logged: {exc!r:.300}", file=sys.stderr,
              flush=True)  # fmt: skip
        return
    if run_id:
        print(f"[raysweep] tracking: report logged to run {run_id}", flush=True)


def _summary(points: list[TrialConfig], records: Path, *, grid: bool, search: bool,
             search_failed: int = 0) -> int:  # fmt: skip
    """Print what ``records`` holds of this run; the exit status.

    1 when a trial the run was meant to finish has no ``ok`` record: a grid point (with
    ``grid``), a best mix's confirmation (with ``search``), or one of the ``search_failed``
    search trials this run saw fail (the study carried on without them, but it holds fewer
    trials than asked and a failure that recurs is the user's to fix), else 0.
    """
    latest = latest_records(records)
    status = {i: r.status for i, r in latest.items()}
    failed: list[str] = []
    unfinished = 0
    if grid:
        ok = sum(status.get(p.trial_id) == "ok" for p in points)
        errors = [p.label for p in points if status.get(p.trial_id) == "error"]
        unfinished += len(points) - ok
        failed += errors
        print(f"[raysweep] summary: {ok}/{len(points)} points ok, {len(errors)} in error",
              flush=True)  # fmt: skip
    if search:
        trials = [r for r in latest.values() if r.phase == "search"]
        confirms = [r for r in latest.values() if r.phase == "confirm"]
        confirmed = [r for r in confirms if r.status == "ok"]
        unfinished += len(confirms) - len(confirmed)
        failed += [f"confirm {r.method} {r.structure} {r.sparsity:g} {r.mix}"
                   for r in confirms if r.status != "ok"]  # fmt: skip
        in_error = sum(r.status == "error" for r in trials)
        # Stopped early at a rung by the scheduler: the search meant to, not a failure.
        stopped = sum(r.status == "stopped" for r in trials)
        unfinished += search_failed
        print(f"[raysweep] summary: {len(trials) - in_error - stopped}/{len(trials)} search "
              f"trials ok{f', {stopped} stopped early' if stopped else ''}"
              f"{f', {in_error} in error' if in_error else ''}, "
              f"{len(confirmed)}/{len(confirms)} confirmations ok", flush=True)  # fmt: skip
        if search_failed:
            failed.append(f"{search_failed} search trial(s) failed in this run: their records "
                          "say why")  # fmt: skip
    print(f"[raysweep] records in {records}", flush=True)
    for label in failed:
        print(f"[raysweep]   error: {label}", flush=True)
    return 1 if unfinished else 0


if __name__ == "__main__":
    raise SystemExit(main())
