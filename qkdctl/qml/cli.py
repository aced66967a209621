"""`qkdctl qml`: quantum backends and the job ledger of a run directory.

  qkdctl qml backends [--ibm] [--json]
  qkdctl qml jobs RUN_DIR [--json]
  qkdctl qml status RUN_DIR JOB_ID
  qkdctl qml fetch RUN_DIR JOB_ID        (counts as JSON)
  qkdctl qml cancel RUN_DIR JOB_ID

RUN_DIR is a `qkdctl run` output directory (its run.sqlite holds the ledger).
Jobs of `ibm:` backends are looked up again by id through the saved account.
"""

from __future__ import annotations

import json

import typer

qml_app = typer.Typer(no_args_is_help=True, help="Quantum backends and the QML job ledger.")


def _ledger(run_dir: str, job_id: str | None = None):
    """The run directory's ledger; attached to the job's ibm backend when it ran on one."""
    from qkdctl.qml.backends import open_backend
    from qkdctl.qml.ledger import JobLedger

    led = JobLedger.open(run_dir)
    if job_id is not None:
        spec = led.row(job_id)["backend"]
        if spec.startswith("ibm:"):
            led.backend = open_backend(spec)
    return led


def _guarded(fn):
    from qkdctl.cli import guarded

    return guarded(fn)


@qml_app.command("backends")
def backends(
    ibm: bool = typer.Option(False, "--ibm", help="Also list the IBM backends of the saved account."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Backend names accepted by the QML tuners' `backend` option."""
    from qkdctl.core.errors import QkdInputError
    from qkdctl.qml.backends import fake_device_names

    def work() -> dict:
        devices = fake_device_names()
        out = {"aer": ["aer"] + [f"aer:{d}" for d in devices], "fake": [f"fake:{d}" for d in devices]}
        if ibm:
            try:
                from qiskit_ibm_runtime import QiskitRuntimeService

                out["ibm"] = [f"ibm:{b.name}" for b in QiskitRuntimeService().backends()]
            except Exception as exc:  # no account, no network
                raise QkdInputError(f"cannot list IBM backends ({type(exc).__name__}: {exc}); "
                                    "see docs/qml_backends.md for saving an account") from None
        return out

    out = _guarded(work)
    if as_json:
        print(json.dumps(out))
        return
    for kind, names in out.items():
        print(f"{kind}: {' '.join(names)}")
    if not ibm:
        print("ibm: ibm:<name> with a saved IBM Quantum account (list them with --ibm)")


@qml_app.command("jobs")
def jobs(
    run_dir: str = typer.Argument(..., help="Run output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every quantum job of the run directory's ledger."""
    rows = _guarded(lambda: _ledger(run_dir).jobs())
    if as_json:
        print(json.dumps({"jobs": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("job id", "backend", "status", "shots", "circuits", "latency s", "queue s", "tag")
    for col in table.columns:
        col.overflow = "fold"  # job ids are copied from here: never truncated
    for r in rows:
        fmt = (lambda v: "" if v is None else f"{v:.3f}")
        table.add_row(r["job_id"], r["backend"], r["status"], str(r["shots"]), str(r["circuits"]),
                      fmt(r["latency_s"]), fmt(r["queue_s"]), r["tag"] or "")
    Console().print(table)


@qml_app.command("status")
def status(run_dir: str = typer.Argument(..., help="Run output directory."),
           job_id: str = typer.Argument(..., help="Job id (see `qkdctl qml jobs`).")) -> None:
    """Poll one job and print its status."""
    print(_guarded(lambda: _ledger(run_dir, job_id).status(job_id)))


@qml_app.command("fetch")
def fetch(run_dir: str = typer.Argument(..., help="Run output directory."),
          job_id: str = typer.Argument(..., help="Job id (see `qkdctl qml jobs`).")) -> None:
    """Print a finished job's counts as JSON (per PUB, per register, per parameter set)."""
    print(json.dumps({"job_id": job_id, "counts": _guarded(lambda: _ledger(run_dir, job_id).result(job_id))}))


@qml_app.command("cancel")
def cancel(run_dir: str = typer.Argument(..., help="Run output directory."),
           job_id: str = typer.Argument(..., help="Job id (see `qkdctl qml jobs`).")) -> None:
    """Cancel a pending job; print its status afterwards."""
    print(_guarded(lambda: _ledger(run_dir, job_id).cancel(job_id)))
